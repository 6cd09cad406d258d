#pragma once
// `{{name}}` templates for declarative requests. Variables from the plan (or `load --var`) are substituted
// once at compile time; built-ins change per iteration and are rendered on the request path without
// allocation once the output buffer has grown:
//   {{__VU}} {{__ITER}} (as in k6), {{__UUID}} (random v4), {{__RANDOM}} (random 0..2^32-1),
//   {{__TIMESTAMP_MS}} (wall clock, ms since the epoch)

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace meridian::loadgen {

using VarMap = std::map<std::string, std::string, std::less<>>;

struct RenderContext {
  uint64_t vu = 0;
  uint64_t iteration = 0;
  std::mt19937_64* rng = nullptr;
};

class Template {
 public:
  // `field` names where the text came from, for errors ("url of request 'cart'").
  static Result<Template> Compile(std::string_view text, const VarMap& vars, std::string_view field);

  bool is_static() const {
    return pieces_.empty() || (pieces_.size() == 1 && pieces_[0].kind == Kind::kLiteral);
  }
  // The whole text when static.
  std::string static_text() const { return pieces_.empty() ? std::string() : pieces_[0].literal; }
  // Appends the rendered text.
  void Render(std::string& out, const RenderContext& ctx) const;

 private:
  enum class Kind : uint8_t { kLiteral, kVu, kIter, kUuid, kRandom, kTimestampMs };
  struct Piece {
    Kind kind = Kind::kLiteral;
    std::string literal;
  };
  std::vector<Piece> pieces_;
};

// The built-in names, for messages.
const char* BuiltinVariableNames();

}  // namespace meridian::loadgen
