#pragma once
// The one JSON writer. nlohmann's plain dump throws on a string that is not UTF-8 — a command's output, a
// header, a query value, a log line — and an exception there loses the answer or the record it was part of.
// JsonText never throws: each invalid byte becomes U+FFFD. scripts/lint refuses a dump call anywhere else.
// (Secrets are not written with it when their bytes matter: they travel base64.)

#include <nlohmann/json.hpp>
#include <string>

namespace meridian {

// Compact, or indented by `indent` spaces.
std::string JsonText(const nlohmann::json& j, int indent = -1);
std::string JsonText(const nlohmann::ordered_json& j, int indent = -1);

}  // namespace meridian
