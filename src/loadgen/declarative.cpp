#include "loadgen/declarative.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/clock.h"

namespace meridian::loadgen {

using stats::ErrorKind;

size_t OriginTable::Intern(const http::Url& url) {
  for (size_t i = 0; i < origins_.size(); ++i) {
    if (origins_[i].scheme == url.scheme && origins_[i].host == url.host && origins_[i].port == url.port)
      return i;
  }
  origins_.push_back(OriginSpec{url.scheme, url.host, url.port, url.HostHeader()});
  return origins_.size() - 1;
}

ErrorKind ClassifyStatus(int status, const std::vector<int>& expected) {
  const bool ok = expected.empty() ? (status >= 200 && status < 400)
                                   : std::find(expected.begin(), expected.end(), status) != expected.end();
  if (ok) return ErrorKind::kNone;
  if (status >= 500) return ErrorKind::kHttp5xx;
  if (status >= 400) return ErrorKind::kHttp4xx;
  return ErrorKind::kCheck;
}

Result<std::shared_ptr<const RequestProgram>> RequestProgram::Compile(const std::vector<RequestSpec>& specs,
                                                                      const VarMap& vars,
                                                                      uint16_t first_series,
                                                                      OriginTable& origins,
                                                                      std::string_view field_prefix) {
  auto program = std::make_shared<RequestProgram>();
  if (specs.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: give at least one request", field_prefix));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const RequestSpec& spec = specs[i];
    const std::string where = fmt::format("{}[{}]", field_prefix, i);
    CompiledRequest r;
    auto method = http::NormalizeMethod(spec.method);
    if (!method.ok())
      return MakeError(ErrorCode::kInvalidArgument, where + ".method: " + method.error().message);
    r.method = *method;
    r.head = r.method == "HEAD";
    r.idempotent = r.method == "GET" || r.method == "HEAD" || r.method == "OPTIONS" || r.method == "PUT" ||
                   r.method == "DELETE" || r.method == "TRACE";
    auto url_tmpl = Template::Compile(spec.url, vars, where + ".url");
    if (!url_tmpl.ok()) return url_tmpl.error();
    // Resolve the origin from the URL with per-iteration built-ins blanked: they may only appear in the path.
    std::string probe_text;
    {
      RenderContext blank;
      std::mt19937_64 rng(1);
      blank.rng = &rng;
      url_tmpl->Render(probe_text, blank);
    }
    auto url = http::ParseUrl(probe_text);
    if (!url.ok()) return MakeError(ErrorCode::kInvalidArgument, where + ".url: " + url.error().message);
    r.origin = origins.Intern(*url);
    r.host_header = url->HostHeader();
    // The target template: everything after scheme://authority in the original text.
    std::string_view raw = spec.url;
    const size_t scheme_end = raw.find("://");
    const size_t path_start =
        raw.find_first_of("/?#", scheme_end == std::string_view::npos ? 0 : scheme_end + 3);
    std::string_view authority = raw.substr(0, path_start);
    if (authority.find("{{__") != std::string_view::npos) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("{}.url: the scheme, host and port cannot use per-iteration variables ({})", where,
                      BuiltinVariableNames()));
    }
    std::string target_text =
        path_start == std::string_view::npos ? "/" : std::string(raw.substr(path_start));
    if (const size_t hash = target_text.find('#'); hash != std::string::npos) target_text.resize(hash);
    if (target_text.empty() || target_text.front() == '?') target_text.insert(0, "/");
    auto target = Template::Compile(target_text, vars, where + ".url");
    if (!target.ok()) return target.error();
    r.target = std::move(*target);
    if (r.target.is_static()) r.target = *Template::Compile(url->target, {}, where + ".url");

    for (const auto& [name, value] : spec.headers) {
      auto line = http::ParseHeaderLine(name + ": " + value);
      if (!line.ok())
        return MakeError(ErrorCode::kInvalidArgument, where + ".headers: " + line.error().message);
      auto t = Template::Compile(value, vars, fmt::format("{}.headers.{}", where, name));
      if (!t.ok()) return t.error();
      r.headers.emplace_back(name, std::move(*t));
    }
    if (spec.json && !http::HasHeader(spec.headers, "content-type")) {
      r.headers.emplace_back("Content-Type", *Template::Compile("application/json", {}, where));
    }
    auto body = Template::Compile(spec.body, vars, where + ".body");
    if (!body.ok()) return body.error();
    r.body = std::move(*body);
    r.expect_status = spec.expect_status;
    for (int s : r.expect_status) {
      if (s < 100 || s > 599) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("{}.expect.status: {} is not an HTTP status (100-599)", where, s));
      }
    }
    r.name = spec.name.empty() ? fmt::format("{} {}", r.method, spec.url) : spec.name;
    r.series = static_cast<uint16_t>(first_series + i);

    r.dynamic =
        !r.target.is_static() || !r.body.is_static() ||
        std::any_of(r.headers.begin(), r.headers.end(), [](const auto& h) { return !h.second.is_static(); });
    if (!r.dynamic) {
      for (const auto& [n, t] : r.headers) r.static_headers.emplace_back(n, t.static_text());
      const std::string body_text = r.body.static_text();
      http::AppendRequestHead(r.prebuilt, r.method, r.target.static_text(), r.host_header, r.static_headers,
                              body_text.size());
      r.prebuilt.append(body_text);
    }
    program->requests_.push_back(std::move(r));
  }
  return std::shared_ptr<const RequestProgram>(std::move(program));
}

namespace {

class DeclarativeIteration final : public Iteration, public http::ClientHandler {
 public:
  explicit DeclarativeIteration(std::shared_ptr<const RequestProgram> program)
      : program_(std::move(program)) {}

  void Start(Vu& vu) override {
    vu_ = &vu;
    next_ = 0;
    SendNext(vu.iteration_began_ns());
  }

  void Abort(Vu&) override { vu_ = nullptr; }

  void OnResponse(const http::ResponseEvent& event) override {
    if (vu_ == nullptr) return;
    const CompiledRequest& r = program_->requests()[next_];
    stats::RequestSample sample = event.sample;
    if (sample.error == ErrorKind::kNone) sample.error = ClassifyStatus(sample.status, r.expect_status);
    vu_->RecordRequest(r.series, sample, event.error_message);
    if (++next_ < program_->requests().size()) {
      SendNext(event.completed_ns);
      return;
    }
    Vu* vu = vu_;
    vu_ = nullptr;
    vu->FinishIteration(false, event.completed_ns);
  }

 private:
  // `now`: when the iteration began, or when the previous request completed (the next one is due at once).
  void SendNext(int64_t now) {
    const CompiledRequest& r = program_->requests()[next_];
    http::RequestOptions options;
    if (r.dynamic) {
      Render(r);
      options.bytes = scratch_;
    } else {
      options.bytes = r.prebuilt;
    }
    options.head = r.head;
    options.idempotent = r.idempotent;
    options.start_ns = vu_->NextRequestStart(now);
    options.now_ns = now;
    vu_->Connection(r.origin).Send(options, this);
  }

  void Render(const CompiledRequest& r) {
    RenderContext ctx{vu_->id(), vu_->iteration(), &vu_->rng()};
    body_.clear();
    r.body.Render(body_, ctx);
    target_.clear();
    r.target.Render(target_, ctx);
    headers_.resize(r.headers.size());  // entries keep their capacity from one render to the next
    for (size_t i = 0; i < r.headers.size(); ++i) {
      headers_[i].first.assign(r.headers[i].first);
      headers_[i].second.clear();
      r.headers[i].second.Render(headers_[i].second, ctx);
    }
    scratch_.clear();
    http::AppendRequestHead(scratch_, r.method, target_, r.host_header, headers_, body_.size());
    scratch_.append(body_);
  }

  std::shared_ptr<const RequestProgram> program_;
  Vu* vu_ = nullptr;
  size_t next_ = 0;
  std::string scratch_;
  std::string body_;
  std::string target_;
  http::HeaderList headers_;
};

class DeclarativeFactory final : public IterationFactory {
 public:
  explicit DeclarativeFactory(std::shared_ptr<const RequestProgram> program) : program_(std::move(program)) {}
  std::unique_ptr<Iteration> NewIteration(Vu&) override {
    return std::make_unique<DeclarativeIteration>(program_);
  }

 private:
  std::shared_ptr<const RequestProgram> program_;
};

}  // namespace

IterationFactoryMaker DeclarativeFactoryMaker(std::shared_ptr<const RequestProgram> program) {
  return [program](WorkerEnv&) -> Result<std::unique_ptr<IterationFactory>> {
    return std::unique_ptr<IterationFactory>(std::make_unique<DeclarativeFactory>(program));
  };
}

}  // namespace meridian::loadgen
