#pragma once
// meridian net: per-thread event loop and timers, sockets, name resolution with a deadline, TLS contexts.
// The public header of src/net.

#include "net/event_loop.h"  // IWYU pragma: export
#include "net/resolver.h"    // IWYU pragma: export
#include "net/socket.h"      // IWYU pragma: export
#include "net/tls.h"         // IWYU pragma: export
