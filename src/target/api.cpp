// A small JSON shop under /api/ so that script journeys (login -> browse -> cart) have something real to talk
// to: tokens are checked, bodies are parsed, ids are looked up. And /api/echo, which returns the request as
// JSON, for testing clients.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/json.h"
#include "http/server.h"
#include "target/target_internal.h"

namespace meridian::target {
namespace {

using json = nlohmann::json;

constexpr int kProducts = 20;

json Product(int id) {
  return json{{"id", id}, {"name", fmt::format("product {}", id)}, {"price", 5 + (id * 37) % 95}};
}

std::string Header(const ApiRequest& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) { return std::tolower(a) == b; })) {
      return v;
    }
  }
  return {};
}

std::pair<int, json> Route(const ApiRequest& r) {
  const std::string path = r.target.substr(0, r.target.find('?'));
  const std::string query =
      r.target.find('?') == std::string::npos ? "" : r.target.substr(r.target.find('?') + 1);
  auto error = [](int status, std::string message) { return std::pair{status, json{{"error", message}}}; };
  if (path == "/api/echo") {
    json headers = json::object();
    for (const auto& [k, v] : r.headers) {
      std::string lower = k;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      headers[lower] = v;
    }
    return {
        200,
        json{{"method", r.method}, {"path", path}, {"query", query}, {"headers", headers}, {"body", r.body}}};
  }
  if (path == "/api/login") {
    if (r.method != "POST") return error(405, "use POST /api/login {\"user\": ..., \"password\": ...}");
    const json body = json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("user") || !body["user"].is_string()) {
      return error(400, "body: give JSON {\"user\": \"name\", \"password\": \"...\"}");
    }
    if (body.value("password", "") == "wrong") return error(401, "bad credentials");
    return {200, json{{"token", "tok-" + body["user"].get<std::string>()}}};
  }
  if (path == "/api/products") {
    json list = json::array();
    for (int i = 1; i <= kProducts; ++i) list.push_back(Product(i));
    return {200, list};
  }
  if (path.rfind("/api/products/", 0) == 0) {
    const std::string id_text = path.substr(14);
    int id = 0;
    for (char c : id_text) id = (c >= '0' && c <= '9' && id < 100000) ? id * 10 + (c - '0') : -1;
    if (id_text.empty() || id < 1 || id > kProducts) return error(404, "no such product");
    return {200, Product(id)};
  }
  if (path == "/api/cart") {
    const std::string auth = Header(r, "authorization");
    if (auth.rfind("Bearer tok-", 0) != 0) return error(401, "log in first: Authorization: Bearer <token>");
    if (r.method != "POST") return error(405, "use POST /api/cart {\"product\": id, \"quantity\": n}");
    const json body = json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("product") ||
        !body["product"].is_number_integer()) {
      return error(400, "body: give JSON {\"product\": id, \"quantity\": n}");
    }
    const int id = body["product"].get<int>();
    if (id < 1 || id > kProducts) return error(404, "no such product");
    return {201, json{{"user", auth.substr(11)}, {"product", id}, {"quantity", body.value("quantity", 1)}}};
  }
  return error(404, "unknown API path (echo, login, products, products/{id}, cart)");
}

}  // namespace

std::string RenderApi(const ApiRequest& r) {
  auto [status, body] = Route(r);
  const std::string text = JsonText(body);
  // A successful login also sets a session cookie (for clients with a cookie jar; /api/echo shows it back).
  std::string cookie;
  if (status == 200 && r.target.rfind("/api/login", 0) == 0 && body.contains("token")) {
    cookie = fmt::format("Set-Cookie: session={}; Path=/; HttpOnly\r\n", body["token"].get<std::string>());
  }
  return fmt::format(
      "HTTP/1.1 {} {}\r\nServer: meridian-target\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n{}{}\r\n{}",
      status, http::StatusReason(status), r.method == "HEAD" ? 0 : text.size(), cookie,
      r.close ? "Connection: close\r\n" : "", r.method == "HEAD" ? "" : text);
}

}  // namespace meridian::target
