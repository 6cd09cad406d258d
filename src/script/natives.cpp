// The native functions behind the prelude: console output, timers, sleep, checks, groups, open() and the
// measured HTTP client. Every native finds its Runtime through the context and its VU as Runtime::current().
#include <fmt/format.h>
#include <js/Array.h>
#include <js/Conversions.h>
#include <js/PropertyAndElement.h>
#include <js/PropertySpec.h>
#include <strings.h>

#include <algorithm>
#include <ctime>

#include "core/clock.h"
#include "core/log.h"
#include "core/utf8.h"
#include "http/request.h"
#include "http/server.h"
#include "http/syntax.h"
#include "http/url.h"
#include "loadgen/declarative.h"
#include "loadgen/recorder.h"
#include "script/runtime.h"

namespace meridian::script {

namespace {

// The value as UTF-8 in `out` (its capacity kept: a buffer reused between calls allocates nothing).
void Utf8(JSContext* cx, JS::HandleValue v, std::string& out) {
  out.clear();
  JS::RootedString s(cx, v.isString() ? v.toString() : JS::ToString(cx, v));
  if (!s) return;
  // ASCII (methods, most URLs, names, header lines, JSON) is copied straight out of the engine's Latin-1
  // storage.
  if (JS::StringHasLatin1Chars(s) && JS_EnsureLinearString(cx, s) != nullptr) {
    JS::AutoCheckCannotGC nogc;
    size_t n = 0;
    const JS::Latin1Char* chars = JS_GetLatin1StringCharsAndLength(cx, nogc, s, &n);
    if (chars != nullptr && std::all_of(chars, chars + n, [](JS::Latin1Char c) { return c < 0x80; })) {
      out.assign(reinterpret_cast<const char*>(chars), n);
      return;
    }
  }
  JSLinearString* linear = JS_EnsureLinearString(cx, s);
  if (linear == nullptr) return;
  const size_t length = JS::GetDeflatedUTF8StringLength(linear);  // a string may hold NUL characters
  JS::UniqueChars chars = JS_EncodeStringToUTF8(cx, s);
  if (chars) out.assign(chars.get(), length);
}

std::string Utf8(JSContext* cx, JS::HandleValue v) {
  std::string out;
  Utf8(cx, v, out);
  return out;
}

JSString* NewString(JSContext* cx, std::string_view s) {
  return JS_NewStringCopyUTF8N(cx, JS::UTF8Chars(s.data(), s.size()));
}

// Response text as a string: bytes that are not UTF-8 (a binary body) become U+FFFD each, as a decoder in a
// browser or Node would make them, instead of failing the iteration.
JSString* NewText(JSContext* cx, std::string_view s) {
  if (JSString* text = NewString(cx, s)) return text;  // the usual case: one pass over the bytes
  if (FirstInvalidUtf8(s) == std::string_view::npos) return nullptr;  // not the encoding (out of memory)
  JS_ClearPendingException(cx);
  std::string out;
  out.reserve(s.size() + 16);
  while (!s.empty()) {
    const size_t bad = FirstInvalidUtf8(s);
    if (bad == std::string_view::npos) {
      out.append(s);
      break;
    }
    out.append(s.substr(0, bad)).append("\xEF\xBF\xBD");
    s.remove_prefix(bad + 1);
  }
  return NewString(cx, out);
}

bool Throw(JSContext* cx, const std::string& message) {
  JS_ReportErrorUTF8(cx, "%s", message.c_str());
  return false;
}

VuScript* RequireVu(JSContext* cx, const char* what) {
  Runtime& rt = Runtime::From(cx);
  if (rt.current() == nullptr || rt.env() == nullptr) {
    Throw(cx,
          fmt::format("{} is not available in the init code (the top level of the script): call it from the "
                      "VU function",
                      what));
    return nullptr;
  }
  return rt.current();
}

// log(level, text)
bool NativeLog(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  Runtime& rt = Runtime::From(cx);
  int level = 1;
  if (args.length() > 0 && args[0].isInt32()) level = args[0].toInt32();
  const std::string text = args.length() > 1 ? Utf8(cx, args[1]) : std::string();
  const std::string who =
      rt.current() ? fmt::format("[vu {}] ", rt.current()->vu.id()) : std::string("[init] ");
  switch (level) {
    case 0:
    case 1:
      LogInfo("{}{}", who, text);
      break;
    case 2:
      LogWarn("{}{}", who, text);
      break;
    default:
      LogError("{}{}", who, text);
      break;
  }
  args.rval().setUndefined();
  return true;
}

int64_t MillisToNanos(double ms) {
  if (!(ms > 0)) return 0;
  if (ms > 1e12) ms = 1e12;
  return static_cast<int64_t>(ms * 1e6);
}

// setTimer(fn, ms, argsArray|null, repeat) -> id
bool NativeSetTimer(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  VuScript* vs = RequireVu(cx, "setTimeout/setInterval");
  if (vs == nullptr) return false;
  if (args.length() < 4 || !args[0].isObject()) return Throw(cx, "setTimer: bad arguments");
  double ms = 0;
  if (!JS::ToNumber(cx, args[1], &ms)) return false;
  JS::RootedObject fn(cx, &args[0].toObject());
  JS::RootedObject list(cx, args[2].isObject() ? &args[2].toObject() : nullptr);
  const bool repeat = JS::ToBoolean(args[3]);
  const int64_t delay = MillisToNanos(ms);
  JS::RootedObject no_promise(cx);
  const uint32_t id = Runtime::From(cx).AddTimer(*vs, delay, repeat ? std::max<int64_t>(delay, 1'000'000) : 0,
                                                 fn, list, no_promise);
  args.rval().setNumber(id);
  return true;
}

bool NativeClearTimer(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  double id = 0;
  if (args.length() > 0 && JS::ToNumber(cx, args[0], &id) && id >= 1 && id < 4294967296.0 &&
      Runtime::From(cx).env() != nullptr) {
    Runtime::From(cx).CancelTimer(static_cast<uint32_t>(id));
  }
  args.rval().setUndefined();
  return true;
}

// sleep(seconds) -> Promise
bool NativeSleep(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  VuScript* vs = RequireVu(cx, "sleep()");
  if (vs == nullptr) return false;
  double seconds = 0;
  if (args.length() > 0 && !JS::ToNumber(cx, args[0], &seconds)) return false;
  JS::RootedObject promise(cx, JS::NewPromiseObject(cx, nullptr));
  if (!promise) return false;
  JS::RootedObject none(cx);
  Runtime::From(cx).AddTimer(*vs, MillisToNanos(seconds * 1000.0), 0, none, none, promise);
  args.rval().setObject(*promise);
  return true;
}

bool NativeNow(JSContext*, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  args.rval().setDouble(static_cast<double>(MonoNanos()) / 1e6);
  return true;
}

// check(name, ok)
bool NativeCheck(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  VuScript* vs = RequireVu(cx, "check()");
  if (vs == nullptr) return false;
  const std::string name = args.length() > 0 ? Utf8(cx, args[0]) : std::string();
  const bool ok = args.length() > 1 && JS::ToBoolean(args[1]);
  Runtime& rt = Runtime::From(cx);
  const uint16_t index = rt.NameIndex(stats::NameEntry::Kind::kCheck, vs->vu.scenario(), vs->group, name);
  rt.env()->recorder->RecordCheck(index, ok);
  args.rval().setBoolean(ok);
  return true;
}

// groupEnter(name) -> previous group path
bool NativeGroupEnter(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  VuScript* vs = RequireVu(cx, "group()");
  if (vs == nullptr) return false;
  const std::string name = args.length() > 0 ? Utf8(cx, args[0]) : std::string();
  if (name.find("::") != std::string::npos) return Throw(cx, "group: a group name cannot contain '::'");
  JS::RootedString previous(cx, NewString(cx, vs->group));
  if (!previous) return false;
  vs->group += "::" + name;
  args.rval().setString(previous);
  return true;
}

// groupExit(previous, startedMs)
bool NativeGroupExit(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  Runtime& rt = Runtime::From(cx);
  VuScript* vs = rt.current();
  args.rval().setUndefined();
  if (vs == nullptr || rt.env() == nullptr || args.length() < 2) return true;
  double started_ms = 0;
  if (!JS::ToNumber(cx, args[1], &started_ms)) return false;
  const size_t sep = vs->group.rfind("::");
  const std::string parent = sep == std::string::npos ? "" : vs->group.substr(0, sep);
  const std::string name = sep == std::string::npos ? vs->group : vs->group.substr(sep + 2);
  const uint16_t index = rt.NameIndex(stats::NameEntry::Kind::kGroup, vs->vu.scenario(), parent, name);
  const int64_t took = MonoNanos() - static_cast<int64_t>(started_ms * 1e6);
  rt.env()->recorder->RecordGroup(index, std::max<int64_t>(0, took));
  vs->group = Utf8(cx, args[0]);
  return true;
}

bool NativeDone(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  Runtime& rt = Runtime::From(cx);
  if (rt.current() != nullptr) rt.MarkFinished(*rt.current(), false, "");
  args.rval().setUndefined();
  return true;
}

bool NativeFail(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  Runtime& rt = Runtime::From(cx);
  const std::string why = args.length() > 0 ? Utf8(cx, args[0]) : std::string("failed");
  if (rt.current() != nullptr) rt.MarkFinished(*rt.current(), true, why);
  args.rval().setUndefined();
  return true;
}

// open(path[, mode]) -> string: init code only, relative to the calling module.
bool NativeOpen(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  Runtime& rt = Runtime::From(cx);
  if (!rt.in_init()) {
    return Throw(cx,
                 "open() works only in the init code (the top level of the script), where its files are "
                 "bundled with the plan");
  }
  if (args.length() < 1) return Throw(cx, "open: give a path");
  if (args.length() > 1 && !args[1].isUndefined() && Utf8(cx, args[1]) != "r") {
    return Throw(cx, "open: only text mode ('r') is supported");
  }
  std::string path = Utf8(cx, args[0]);
  if (path.empty() || path.front() == '/') {
    return Throw(cx, fmt::format("open('{}'): give a path relative to the script", path));
  }
  JS::AutoFilename caller;
  std::string dir = rt.entry_dir();
  if (JS::DescribeScriptedCaller(cx, &caller) && caller.get() != nullptr) {
    std::string f = caller.get();
    const std::string& prefix = rt.display_prefix();
    if (!prefix.empty() && f.rfind(prefix, 0) == 0) f.erase(0, prefix.size());
    const size_t slash = f.rfind('/');
    dir = slash == std::string::npos ? "" : f.substr(0, slash);
  }
  const std::string key = NormalizePath(dir.empty() ? path : dir + "/" + path);
  auto text = rt.files()->Read(key);
  if (!text.ok()) return Throw(cx, fmt::format("open('{}'): {}", path, text.error().message));
  rt.NoteRead(key, *text);
  JS::RootedString s(cx, NewString(cx, *text));
  if (!s) return false;
  args.rval().setString(s);
  return true;
}

bool GetVu(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  VuScript* vs = Runtime::From(cx).current();
  args.rval().setNumber(vs ? static_cast<double>(vs->vu.id()) : 0.0);
  return true;
}

bool GetIter(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  VuScript* vs = Runtime::From(cx).current();
  args.rval().setNumber(vs ? static_cast<double>(vs->vu.iteration()) : 0.0);
  return true;
}

// The VU's cookie jar: responses' Set-Cookie lines are kept per origin and sent back as one Cookie header
// (unless the script set its own). Attributes other than an expiry in the past (Max-Age <= 0, or an Expires
// date before now, which is how servers delete a cookie) are not interpreted: the jar lives for one
// iteration.
void AddCookieHeader(VuScript& vs, size_t origin, http::HeaderList& headers) {
  auto it = vs.cookies.find(origin);
  if (it == vs.cookies.end() || it->second.empty()) return;
  if (http::HasHeader(headers, "Cookie")) return;
  std::string line;
  for (const auto& [name, value] : it->second) {
    if (!line.empty()) line += "; ";
    line += name + "=" + value;
  }
  headers.emplace_back("Cookie", std::move(line));
}

bool ExpiredCookie(std::string_view attributes) {
  std::string lower(attributes);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (const size_t at = lower.find("max-age="); at != std::string::npos) {
    return std::atoll(lower.c_str() + at + 8) <= 0;
  }
  if (const size_t at = lower.find("expires="); at != std::string::npos) {
    std::tm tm{};
    const std::string date(attributes.substr(at + 8, attributes.find(';', at) - at - 8));
    if (strptime(date.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) != nullptr)
      return timegm(&tm) < std::time(nullptr);
  }
  return false;
}

void KeepCookies(VuScript& vs, size_t origin, std::string_view raw_headers) {
  size_t pos = raw_headers.find('\n');
  while (pos != std::string_view::npos && pos + 1 < raw_headers.size()) {
    const size_t end = raw_headers.find('\n', pos + 1);
    std::string_view line = raw_headers.substr(pos + 1, end == std::string_view::npos ? end : end - pos - 1);
    pos = end;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() < 11 || !http::EqualsIgnoreCase(line.substr(0, 11), "set-cookie:")) continue;
    line = http::TrimOws(line.substr(11));
    const size_t semi = line.find(';');
    const std::string_view pair = line.substr(0, semi);
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    std::string name(pair.substr(0, eq));
    std::string value(pair.substr(eq + 1));
    auto& jar = vs.cookies[origin];
    std::erase_if(jar, [&](const auto& c) { return c.first == name; });
    if (!ExpiredCookie(semi == std::string_view::npos ? std::string_view() : line.substr(semi))) {
      jar.emplace_back(std::move(name), std::move(value));
    }
  }
}

const char* StatusText(int status) {
  const char* reason = http::StatusReason(status);
  return reason ? reason : "";
}

// request(method, url, headers[]|null, body|null, timeoutMs, name|null, responseType, config, accept) ->
// Promise responseType is an index into the prelude's TYPES; a null name means "METHOD url-without-query";
// `accept` adds axios's default Accept header.
bool NativeRequest(JSContext* cx, unsigned argc, JS::Value* vp) {
  JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
  VuScript* vs = RequireVu(cx, "HTTP requests");
  if (vs == nullptr) return false;
  if (args.length() < 9 || !args[6].isInt32()) return Throw(cx, "request: bad arguments");
  Runtime& rt = Runtime::From(cx);
  Runtime::RequestScratch& scratch = rt.request_scratch();
  std::string& method_text = scratch.method;
  Utf8(cx, args[0], method_text);
  auto method = http::NormalizeMethod(method_text);
  if (!method.ok()) return Throw(cx, "request: method: " + method.error().message);
  std::string& url_text = scratch.url;
  Utf8(cx, args[1], url_text);
  auto target = rt.TargetFor(url_text);
  if (!target.ok() && target.error().code != ErrorCode::kDns) {
    return Throw(cx, fmt::format("request: url: {}{}", target.error().message,
                                 url_text.find("://") == std::string::npos
                                     ? " (a relative URL needs baseURL, or the plan's base_url)"
                                     : ""));
  }
  http::HeaderList headers;
  if (args[2].isObject()) {
    JS::RootedObject list(cx, &args[2].toObject());
    uint32_t n = 0;
    if (!JS::GetArrayLength(cx, list, &n)) return false;
    JS::RootedValue k(cx), v(cx);
    for (uint32_t i = 0; i + 1 < n; i += 2) {
      if (!JS_GetElement(cx, list, i, &k) || !JS_GetElement(cx, list, i + 1, &v)) return false;
      std::string name = Utf8(cx, k), value = Utf8(cx, v);
      // The usual header (valid, nothing to trim) goes straight through; anything else gets ParseHeaderLine's
      // trimming and messages.
      if (http::IsHeaderName(name) && http::IsHeaderValue(value) &&
          http::TrimOws(value).size() == value.size()) {
        headers.emplace_back(std::move(name), std::move(value));
        continue;
      }
      auto line = http::ParseHeaderLine(name + ": " + value);  // trims, or names what is wrong
      if (!line.ok()) return Throw(cx, "request: headers: " + line.error().message);
      headers.push_back(std::move(line).value());
    }
  }
  std::string body;
  if (args[3].isString()) body = Utf8(cx, args[3]);
  double timeout_ms = 0;
  if (!JS::ToNumber(cx, args[4], &timeout_ms)) return false;
  std::string& name = scratch.name;
  if (args[5].isNull()) {
    name.assign(*method).append(" ").append(std::string_view(url_text).substr(0, url_text.find('?')));
  } else {
    Utf8(cx, args[5], name);
  }
  const int type = args[6].toInt32();  // the prelude's TYPES: auto (JSON by content type), json, text, none
  if (type < 0 || type > 3) return Throw(cx, "request: bad arguments");
  JS::RootedObject promise(cx, JS::NewPromiseObject(cx, nullptr));
  if (!promise) return false;
  args.rval().setObject(*promise);

  auto r = std::make_unique<PendingRequest>(rt, *vs);
  r->promise = promise;
  r->call_site = rt.CallSite();
  if (args[7].isObject()) r->config = &args[7].toObject();
  r->response_type = static_cast<uint8_t>(type);
  r->capture = type != 3;
  r->head = *method == "HEAD";
  r->idempotent = *method == "GET" || *method == "HEAD" || *method == "OPTIONS" || *method == "PUT" ||
                  *method == "DELETE";
  r->timeout_ns = MillisToNanos(timeout_ms);
  r->series = rt.NameIndex(stats::NameEntry::Kind::kRequest, vs->vu.scenario(), vs->group, name);
  if (!target.ok()) {
    // Measured like any failed request, and the promise rejects (axios: ENOTFOUND) after this call returns.
    r->early_error = target.error().message;
    PendingRequest* raw = r.get();
    vs->requests.push_back(std::move(r));
    rt.env()->loop->Schedule(raw, MonoNanos());
    return true;
  }
  const Runtime::Target& t = **target;
  r->origin = t.origin;
  AddCookieHeader(*vs, t.origin, headers);
  static constexpr std::string_view kDefaultAccept = "Accept: application/json, text/plain, */*\r\n";
  http::AppendRequestHead(r->bytes, *method, t.path, t.host_header, headers, body.size(),
                          JS::ToBoolean(args[8]) ? kDefaultAccept : std::string_view());
  r->bytes.append(body);
  PendingRequest* raw = r.get();
  vs->requests.push_back(std::move(r));
  rt.Dispatch(*vs, raw);
  return true;
}

const char* ErrorCodeFor(stats::ErrorKind kind, std::string_view message) {
  switch (kind) {
    case stats::ErrorKind::kTimeout:
      return "ETIMEDOUT";
    case stats::ErrorKind::kDns:
      return "ENOTFOUND";
    case stats::ErrorKind::kConnect:
      if (message.find("refused") != std::string_view::npos) return "ECONNREFUSED";
      if (message.find("timed out") != std::string_view::npos ||
          message.find("time-out") != std::string_view::npos)
        return "ETIMEDOUT";
      if (message.find("unreachable") != std::string_view::npos) return "EHOSTUNREACH";
      return "ECONNREFUSED";
    case stats::ErrorKind::kReset:
      return "ECONNRESET";
    case stats::ErrorKind::kTls:
      return "EPROTO";
    case stats::ErrorKind::kProtocol:
      return "ERR_BAD_RESPONSE";
    default:
      return "ERR_NETWORK";
  }
}

const JSFunctionSpec kNatives[] = {
    JS_FN("log", NativeLog, 2, 0),
    JS_FN("setTimer", NativeSetTimer, 4, 0),
    JS_FN("clearTimer", NativeClearTimer, 1, 0),
    JS_FN("sleep", NativeSleep, 1, 0),
    JS_FN("now", NativeNow, 0, 0),
    JS_FN("check", NativeCheck, 2, 0),
    JS_FN("groupEnter", NativeGroupEnter, 1, 0),
    JS_FN("groupExit", NativeGroupExit, 2, 0),
    JS_FN("done", NativeDone, 0, 0),
    JS_FN("fail", NativeFail, 1, 0),
    JS_FN("request", NativeRequest, 8, 0),
    JS_FS_END,
};

}  // namespace

bool DefineNatives(JSContext* cx, JS::HandleObject native) {
  if (!JS_DefineFunctions(cx, native, kNatives)) return false;
  if (const ScriptOptions* o = Runtime::From(cx).options(); o && !o->base_url.empty()) {
    JS::RootedString base(cx, NewString(cx, o->base_url));
    if (!base) return false;
    JS::RootedValue base_v(cx, JS::StringValue(base));
    if (!JS_DefineProperty(cx, native, "baseURL", base_v, JSPROP_ENUMERATE)) return false;
  }
  JS::RootedObject global(cx, JS::CurrentGlobalOrNull(cx));
  if (!JS_DefineFunction(cx, global, "open", NativeOpen, 2, 0)) return false;
  if (!JS_DefineProperty(cx, global, "__VU", GetVu, nullptr, JSPROP_ENUMERATE)) return false;
  if (!JS_DefineProperty(cx, global, "__ITER", GetIter, nullptr, JSPROP_ENUMERATE)) return false;
  JS::RootedObject env(cx, JS_NewPlainObject(cx));
  if (!env) return false;
  if (const ScriptOptions* o = Runtime::From(cx).options()) {
    for (const auto& [k, v] : o->env) {
      JS::RootedString s(cx, NewString(cx, v));
      if (!s) return false;
      JS::RootedValue sv(cx, JS::StringValue(s));
      if (!JS_DefineProperty(cx, env, k.c_str(), sv, JSPROP_ENUMERATE)) return false;
    }
  }
  JS::RootedValue env_v(cx, JS::ObjectValue(*env));
  return JS_DefineProperty(cx, global, "__ENV", env_v, JSPROP_ENUMERATE | JSPROP_READONLY);
}

// ---- requests
// ----------------------------------------------------------------------------------------------

void Runtime::Dispatch(VuScript& vs, PendingRequest* r) {
  if (vs.pools.size() <= r->origin) vs.pools.resize(r->origin + 1);
  auto& pool = vs.pools[r->origin];
  http::ClientConnection* conn = nullptr;
  for (auto& c : pool) {
    if (!c->in_flight()) {
      conn = c.get();
      break;
    }
  }
  if (conn == nullptr) {
    if (pool.size() >= VuScript::kConnectionsPerOrigin) return;  // waits in vs.requests until one is free
    pool.push_back(std::make_unique<http::ClientConnection>(*env()->client, origin(r->origin)));
    conn = pool.back().get();
  }
  r->connection = conn;
  http::RequestOptions o;
  o.bytes = r->bytes;
  const int64_t now = MonoNanos();
  o.start_ns = vs.vu.NextRequestStart(now);
  o.now_ns = now;
  o.head = r->head;
  o.idempotent = r->idempotent;
  if (r->capture) {
    o.capture_headers = &r->headers;
    o.capture_body = &r->body;
    o.capture_body_limit = 64u << 20;
  }
  r->started_ns = now;
  if (r->timeout_ns > 0) env()->loop->Schedule(r, now + r->timeout_ns);
  conn->Send(o, r);
}

void Runtime::OnRequestDone(VuScript& vs, PendingRequest* r) {
  const size_t origin_index = r->origin;
  for (size_t i = 0; i < vs.requests.size(); ++i) {
    if (vs.requests[i].get() == r) {
      vs.requests.erase(vs.requests.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  }
  // A connection is free again: start the oldest request waiting for this origin.
  for (auto& q : vs.requests) {
    if (q->connection == nullptr && q->origin == origin_index) {
      Dispatch(vs, q.get());
      break;
    }
  }
}

void Runtime::DropRequestsOf(VuScript& vs) {
  for (auto& pool : vs.pools) {
    for (auto& c : pool) {
      if (c->in_flight()) c->Abort();
    }
  }
  vs.requests.clear();
}

void PendingRequest::OnTimer() {
  http::ResponseEvent event;
  event.completed_ns = MonoNanos();
  if (!early_error.empty()) {
    event.sample.error = stats::ErrorKind::kDns;
    event.error_message = early_error;
  } else {
    if (connection != nullptr) connection->Abort();  // no callback after this
    event.sample.error = stats::ErrorKind::kTimeout;
    event.sample.total_ns = event.completed_ns - started_ns;
    timeout_message_ = fmt::format("timeout of {}ms exceeded", timeout_ns / 1'000'000);
    event.error_message = timeout_message_;
  }
  OnResponse(event);
}

void PendingRequest::OnResponse(const http::ResponseEvent& event) {
  if (armed()) rt_.env()->loop->Cancel(this);
  Runtime& rt = rt_;
  VuScript& vs = vs_;
  JSContext* cx = rt.cx();
  stats::RequestSample sample = event.sample;
  if (sample.error == stats::ErrorKind::kNone) sample.error = loadgen::ClassifyStatus(sample.status, {});
  vs.vu.RecordRequest(series, sample, event.error_message);

  JSAutoRealm ar(cx, rt.global());
  JS::RootedObject p(cx, promise);
  JS::RootedObject cfg(cx, config);
  const stats::ErrorKind kind = event.sample.error;
  const std::string message(event.error_message);
  const int status = event.sample.status;
  std::string raw_headers = std::move(headers);
  if (status != 0) KeepCookies(vs, origin, raw_headers);
  std::string raw_body = std::move(body);
  const uint8_t type = response_type;
  rt.OnRequestDone(vs, this);  // `this` is destroyed here; only locals below
  // Reactions queued by resolving belong to this VU.
  rt.SetCurrent(&vs);

  bool ok = true;
  JS::RootedValue result(cx);
  if (kind != stats::ErrorKind::kNone && (status == 0 || kind == stats::ErrorKind::kTimeout)) {
    JS::RootedValue make(cx, JS::ObjectValue(*rt.make_error()));
    JS::RootedValueArray<3> a(cx);
    JS::RootedString m(cx, NewString(cx, message.empty() ? stats::ErrorKindName(kind) : message));
    JS::RootedString code(cx, NewString(cx, ErrorCodeFor(kind, message)));
    ok = m && code;
    if (ok) {
      a[0].setString(m);
      a[1].setString(code);
      a[2].setObjectOrNull(cfg);
      ok = JS::Call(cx, JS::UndefinedHandleValue, make, a, &result);
    }
    if (ok) ok = JS::RejectPromise(cx, p, result);
  } else {
    // One call into the prelude's makeResponse: an object of one class (one shape) made by JIT code.
    auto ms = [](int64_t ns) { return ns < 0 ? 0.0 : static_cast<double>(ns) / 1e6; };
    JS::RootedValueArray<10> a(cx);
    JS::RootedString h(cx, NewText(cx, raw_headers));
    JS::RootedString b(cx, NewText(cx, raw_body));
    JS::RootedString st(cx, NewString(cx, StatusText(status)));
    ok = h && b && st;
    if (ok) {
      a[0].setInt32(status);
      a[1].setString(st);
      a[2].setString(h);
      a[3].setString(b);
      a[4].setInt32(static_cast<int32_t>(type));
      a[5].setObjectOrNull(cfg);
      a[6].setDouble(ms(event.sample.total_ns));
      a[7].setDouble(ms(event.sample.ttfb_ns));
      a[8].setDouble(ms(event.sample.connect_ns));
      a[9].setDouble(ms(event.sample.tls_ns));
      JS::RootedValue make(cx, JS::ObjectValue(*rt.make_response()));
      ok = JS::Call(cx, JS::UndefinedHandleValue, make, a, &result);
    }
    if (ok) ok = JS::ResolvePromise(cx, p, result);
  }
  if (!ok) rt.MarkFinished(vs, true, rt.TakeException());
  rt.SetCurrent(nullptr);
  rt.Drain();
}

}  // namespace meridian::script
