#pragma once
// meridian http: URLs, request serialisation, the incremental response parser, the keep-alive client
// connection, and request-head parsing for the built-in target. The public header of src/http.

#include "http/client_connection.h"  // IWYU pragma: export
#include "http/fetch.h"              // IWYU pragma: export
#include "http/request.h"            // IWYU pragma: export
#include "http/request_parser.h"     // IWYU pragma: export
#include "http/response_parser.h"    // IWYU pragma: export
#include "http/server.h"             // IWYU pragma: export
#include "http/url.h"                // IWYU pragma: export
