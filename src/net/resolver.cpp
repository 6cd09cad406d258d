#include "net/resolver.h"

#include <fmt/format.h>
#include <netdb.h>

#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <thread>

#include "core/clock.h"
#include "core/duration.h"

namespace meridian::net {

Result<Resolved> Resolve(const std::string& host, uint16_t port, int64_t timeout_ns) {
  if (auto numeric = NumericEndpoint(host, port); numeric.ok()) {
    return Resolved{{*numeric}, 0};
  }
  struct Outcome {
    int rc = 0;
    std::vector<Endpoint> endpoints;
  };
  auto promise = std::make_shared<std::promise<Outcome>>();
  std::future<Outcome> future = promise->get_future();
  const int64_t started = MonoNanos();
  // Detached: if the lookup outlives the deadline, its thread finishes on its own and its result is dropped.
  std::thread([promise, host, port] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* list = nullptr;
    Outcome out;
    out.rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
    for (addrinfo* ai = list; out.rc == 0 && ai; ai = ai->ai_next) {
      Endpoint ep;
      std::memcpy(&ep.addr, ai->ai_addr, ai->ai_addrlen);
      ep.len = ai->ai_addrlen;
      out.endpoints.push_back(ep);
    }
    if (list) freeaddrinfo(list);
    promise->set_value(std::move(out));
  }).detach();
  if (future.wait_for(std::chrono::nanoseconds(timeout_ns)) != std::future_status::ready) {
    return MakeError(ErrorCode::kDns, fmt::format("cannot resolve host '{}': no answer within {}", host,
                                                  FormatDuration(timeout_ns)));
  }
  Outcome out = future.get();
  if (out.rc != 0) {
    return MakeError(ErrorCode::kDns,
                     fmt::format("cannot resolve host '{}': {}", host, gai_strerror(out.rc)));
  }
  if (out.endpoints.empty()) {
    return MakeError(ErrorCode::kDns, fmt::format("cannot resolve host '{}': no addresses", host));
  }
  return Resolved{std::move(out.endpoints), MonoNanos() - started};
}

}  // namespace meridian::net
