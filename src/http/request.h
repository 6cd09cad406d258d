#pragma once
// Serialising HTTP/1.1 requests, and checking user-supplied header fields.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "http/url.h"

namespace meridian::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Parses "Name: value" as given to -H; rejects invalid names and CR/LF in values.
Result<std::pair<std::string, std::string>> ParseHeaderLine(std::string_view line);
// What ParseHeaderLine accepts: a non-empty token, and a value without control characters (HTAB allowed).
bool IsHeaderName(std::string_view name);
bool IsHeaderValue(std::string_view value);

// Validates a method token (GET, POST, custom tokens); returns it upper-cased.
Result<std::string> NormalizeMethod(std::string_view method);

// Appends "METHOD target HTTP/1.1" and the header section to `out`; adds Host and User-Agent unless given,
// and Content-Length when there is a body or the method usually carries one. `body` is not appended.
// `more_lines` are header lines already formatted ("Name: value\r\n" each), written after `headers`.
void AppendRequestHead(std::string& out, std::string_view method, std::string_view target,
                       std::string_view host_header, const HeaderList& headers, size_t body_size,
                       std::string_view more_lines = {});

// A whole request: head plus body.
std::string BuildRequest(std::string_view method, const Url& url, const HeaderList& headers,
                         std::string_view body);

bool HasHeader(const HeaderList& headers, std::string_view name);

}  // namespace meridian::http
