#include "loadgen/template.h"

#include <fmt/format.h>

#include "core/clock.h"

namespace meridian::loadgen {

const char* BuiltinVariableNames() { return "__VU, __ITER, __UUID, __RANDOM, __TIMESTAMP_MS"; }

Result<Template> Template::Compile(std::string_view text, const VarMap& vars, std::string_view field) {
  Template t;
  auto literal = [&](std::string_view s) {
    if (s.empty()) return;
    if (!t.pieces_.empty() && t.pieces_.back().kind == Kind::kLiteral) {
      t.pieces_.back().literal.append(s);
    } else {
      t.pieces_.push_back(Piece{Kind::kLiteral, std::string(s)});
    }
  };
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      literal(text.substr(pos));
      break;
    }
    literal(text.substr(pos, open - pos));
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: '{{{{' at offset {} has no closing '}}}}'", field, open));
    }
    std::string_view name = text.substr(open + 2, close - open - 2);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name == "__VU") {
      t.pieces_.push_back(Piece{Kind::kVu, {}});
    } else if (name == "__ITER") {
      t.pieces_.push_back(Piece{Kind::kIter, {}});
    } else if (name == "__UUID") {
      t.pieces_.push_back(Piece{Kind::kUuid, {}});
    } else if (name == "__RANDOM") {
      t.pieces_.push_back(Piece{Kind::kRandom, {}});
    } else if (name == "__TIMESTAMP_MS") {
      t.pieces_.push_back(Piece{Kind::kTimestampMs, {}});
    } else if (auto it = vars.find(name); it != vars.end()) {
      literal(it->second);
    } else {
      std::string defined;
      for (const auto& [k, v] : vars) defined += (defined.empty() ? "" : ", ") + k;
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: unknown variable '{{{{{}}}}}' (vars: {}; built-in: {})", field, name,
                                   defined.empty() ? "none" : defined, BuiltinVariableNames()));
    }
    pos = close + 2;
  }
  return t;
}

void Template::Render(std::string& out, const RenderContext& ctx) const {
  char buf[40];
  for (const Piece& p : pieces_) {
    switch (p.kind) {
      case Kind::kLiteral:
        out.append(p.literal);
        break;
      case Kind::kVu: {
        auto r = fmt::format_to_n(buf, sizeof buf, "{}", ctx.vu);
        out.append(buf, r.size);
        break;
      }
      case Kind::kIter: {
        auto r = fmt::format_to_n(buf, sizeof buf, "{}", ctx.iteration);
        out.append(buf, r.size);
        break;
      }
      case Kind::kRandom: {
        auto r = fmt::format_to_n(buf, sizeof buf, "{}", static_cast<uint32_t>((*ctx.rng)()));
        out.append(buf, r.size);
        break;
      }
      case Kind::kTimestampMs: {
        auto r = fmt::format_to_n(buf, sizeof buf, "{}", WallNanos() / 1'000'000);
        out.append(buf, r.size);
        break;
      }
      case Kind::kUuid: {
        uint64_t hi = (*ctx.rng)();
        uint64_t lo = (*ctx.rng)();
        hi = (hi & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
        lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // variant 10
        auto r = fmt::format_to_n(buf, sizeof buf, "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32,
                                  (hi >> 16) & 0xFFFF, hi & 0xFFFF, lo >> 48, lo & 0xFFFFFFFFFFFFULL);
        out.append(buf, r.size);
        break;
      }
    }
  }
}

}  // namespace meridian::loadgen
