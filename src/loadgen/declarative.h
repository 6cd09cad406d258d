#pragma once
// Declarative iterations: a list of requests run in order on the VU's keep-alive connections, templated with
// {{vars}}. Requests that do not use per-iteration built-ins are serialised once, up front, and sent from
// that buffer; templated ones render into a per-VU buffer that is reused.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "http/request.h"
#include "http/url.h"
#include "loadgen/iteration.h"
#include "loadgen/template.h"

namespace meridian::loadgen {

struct RequestSpec {
  std::string name;  // series name; default "METHOD url" with the URL as written
  std::string method = "GET";
  std::string url;                 // absolute; may use {{vars}}, but scheme, host and port must not vary
  http::HeaderList headers;        // values may use {{vars}}
  std::string body;                // raw body, may use {{vars}}
  bool json = false;               // body is JSON: sets Content-Type unless a header does
  std::vector<int> expect_status;  // empty: any 2xx or 3xx succeeds (k6's default)
};

// Distinct scheme://host:port destinations of a run, in first-use order.
struct OriginSpec {
  std::string scheme;
  std::string host;
  uint16_t port = 0;
  bool tls() const { return scheme == "https"; }
  std::string host_header;
};

class OriginTable {
 public:
  size_t Intern(const http::Url& url);
  const std::vector<OriginSpec>& origins() const { return origins_; }

 private:
  std::vector<OriginSpec> origins_;
};

struct CompiledRequest {
  std::string name;
  std::string method;
  uint16_t series = 0;  // request index in the run's name table
  size_t origin = 0;
  bool head = false;
  bool idempotent = true;
  bool dynamic = false;
  std::string prebuilt;  // the whole request, when nothing varies per iteration
  Template target;
  Template body;
  std::vector<std::pair<std::string, Template>> headers;
  http::HeaderList static_headers;  // with Content-Type added for JSON
  std::string host_header;
  std::vector<int> expect_status;
};

// The compiled request list of one scenario: immutable, shared by every worker.
class RequestProgram {
 public:
  // `first_series` numbers the requests in the run's request-name table; `field_prefix` prefixes error
  // messages
  // ("scenarios.browse.requests").
  static Result<std::shared_ptr<const RequestProgram>> Compile(const std::vector<RequestSpec>& specs,
                                                               const VarMap& vars, uint16_t first_series,
                                                               OriginTable& origins,
                                                               std::string_view field_prefix);
  const std::vector<CompiledRequest>& requests() const { return requests_; }

 private:
  std::vector<CompiledRequest> requests_;
};

// Classifies a completed response against the expected statuses: kNone, kHttp4xx, kHttp5xx or kCheck.
stats::ErrorKind ClassifyStatus(int status, const std::vector<int>& expected);

// The IterationFactoryMaker for a request program.
IterationFactoryMaker DeclarativeFactoryMaker(std::shared_ptr<const RequestProgram> program);

}  // namespace meridian::loadgen
