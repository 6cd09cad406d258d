#include "script/runtime.h"

#include <fmt/format.h>
#include <js/Array.h>
#include <js/CompilationAndEvaluation.h>
#include <js/ContextOptions.h>
#include <js/Conversions.h>
#include <js/ErrorReport.h>
#include <js/Exception.h>
#include <js/Initialization.h>
#include <js/Modules.h>
#include <js/Realm.h>
#include <js/SavedFrameAPI.h>
#include <js/SourceText.h>
#include <js/Stack.h>
#include <jsfriendapi.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "core/clock.h"
#include "core/duration.h"
#include "core/log.h"
#include "http/url.h"
#include "loadgen/recorder.h"
#include "net/resolver.h"
#include "stats/names.h"

namespace meridian::script {
namespace {

std::once_flag g_engine_once;
bool g_engine_ok = false;
thread_local std::weak_ptr<Context> t_context;
constexpr const char* kPreludeName = "meridian:prelude";  // the prelude's file name in stacks

JSClass kGlobalClass = {"global", JSCLASS_GLOBAL_FLAGS, &JS::DefaultGlobalClassOps, nullptr, nullptr,
                        nullptr};

std::string DirOf(const std::string& key) {
  const size_t slash = key.rfind('/');
  return slash == std::string::npos ? "" : key.substr(0, slash);
}

std::string ToUtf8(JSContext* cx, JS::HandleString s) {
  JS::UniqueChars chars = JS_EncodeStringToUTF8(cx, s);
  return chars ? std::string(chars.get()) : std::string();
}

}  // namespace

// ---- timers ----------------------------------------------------------------------------------------------

class Runtime::ScriptTimer final : public net::Timer {
 public:
  ScriptTimer(JSContext* cx, Runtime& rt, uint32_t id) : fn(cx), args(cx), promise(cx), rt_(rt), id_(id) {}
  void OnTimer() override { rt_.FireTimer(id_); }

  VuScript* owner = nullptr;
  uint32_t generation = 0;
  int64_t interval_ns = 0;
  JS::PersistentRooted<JSObject*> fn;
  JS::PersistentRooted<JSObject*> args;
  JS::PersistentRooted<JSObject*> promise;  // sleep(): resolved instead of calling fn
  std::string call_site;                    // Runtime::CallSite() when set

 private:
  Runtime& rt_;
  uint32_t id_;
};

// ---- VuScript
// ----------------------------------------------------------------------------------------------

VuScript::VuScript(Runtime& runtime, loadgen::Vu& v) : rt(runtime), vu(v), instance(runtime.cx()) {}

VuScript::~VuScript() { rt.Forget(*this); }

void VuScript::OnDeadline() {
  const auto* o = rt.options();
  rt.CutOff(*this, fmt::format("iteration timed out after {} (scenarios.{}.iteration_timeout)",
                               FormatDuration(o ? o->iteration_timeout_ns : 0), o ? o->scenario : ""));
}

// ---- Runtime
// -----------------------------------------------------------------------------------------------

Runtime::Runtime(RuntimeConfig config) : config_(std::move(config)) {}

// ---- Context
// -----------------------------------------------------------------------------------------------

Result<std::shared_ptr<Context>> Context::ForThisThread(uint32_t heap_max_bytes) {
  std::call_once(g_engine_once, [] {
    g_engine_ok = JS_Init();
    // SpiderMonkey's static mutexes complain at exit unless the engine is shut down; every context is gone by
    // then (workers destroy theirs on their own threads).
    if (g_engine_ok) std::atexit([] { JS_ShutDown(); });
  });
  if (!g_engine_ok) return MakeError(ErrorCode::kInternal, "the JavaScript engine failed to initialise");
  if (auto existing = t_context.lock()) {
    // The heap limit is per context: the largest any scenario of the thread asks for.
    if (JS_GetGCParameter(existing->cx_, JSGC_MAX_BYTES) < heap_max_bytes) {
      JS_SetGCParameter(existing->cx_, JSGC_MAX_BYTES, heap_max_bytes);
    }
    return existing;
  }
  std::shared_ptr<Context> c(new Context());
  c->cx_ = JS_NewContext(heap_max_bytes);
  if (c->cx_ == nullptr) return MakeError(ErrorCode::kInternal, "cannot create a JavaScript context");
  JSContext* cx = c->cx_;
  // Async stacks (the stack captured at every await and promise reaction, for debuggers) cost a stack walk
  // per promise; error messages use the synchronous stack of the throw, which stays.
  JS::ContextOptionsRef(cx).setAsyncStack(false);
  JS_SetContextPrivate(cx, c.get());
  JS::SetJobQueue(cx, c.get());
  if (!JS::InitSelfHostedCode(cx))
    return MakeError(ErrorCode::kInternal, "JavaScript self-hosted code failed");
  // Long runs allocate a little garbage per iteration: incremental GC in small slices keeps pauses short and
  // the heap flat; MaybeGC() is called once per second from the loop. SpiderMonkey's defaults suit a browser
  // tab (no collection below 27 MiB of GC heap or 38 MiB of malloc'ed strings and buffers, then 1.5-3x
  // growth); a load generator's live heap is small and steady, so collect from 8 MiB and let it grow 1.5x
  // between GCs.
  JS_SetGCParameter(cx, JSGC_INCREMENTAL_GC_ENABLED, 1);
  JS_SetGCParameter(cx, JSGC_PER_ZONE_GC_ENABLED, 1);
  JS_SetGCParameter(cx, JSGC_SLICE_TIME_BUDGET_MS, 5);
  JS_SetGCParameter(cx, JSGC_ALLOCATION_THRESHOLD, 8);                // MiB
  JS_SetGCParameter(cx, JSGC_MALLOC_THRESHOLD_BASE, 8);               // MiB
  JS_SetGCParameter(cx, JSGC_HIGH_FREQUENCY_SMALL_HEAP_GROWTH, 150);  // percent
  JS_SetGCParameter(cx, JSGC_LOW_FREQUENCY_HEAP_GROWTH, 150);         // percent
  JS::SetPromiseRejectionTrackerCallback(cx, &Context::RejectionTracker, c.get());
  JS::SetModuleResolveHook(JS_GetRuntime(cx), &Context::ResolveHook);
  t_context = c;
  return c;
}

Context::~Context() {
  if (cx_ != nullptr) JS_DestroyContext(cx_);
}

void Context::Remove(Runtime* rt) { std::erase(runtimes_, rt); }

Runtime* Context::Current(JSContext* cx) {
  // Every native asks: with one scenario on the thread (the usual case) the answer needs no realm lookup.
  const auto* context = static_cast<const Context*>(JS_GetContextPrivate(cx));
  if (context != nullptr && context->runtimes_.size() == 1) return context->runtimes_.front();
  JS::Realm* realm = JS::GetCurrentRealmOrNull(cx);
  return realm != nullptr ? static_cast<Runtime*>(JS::GetRealmPrivate(realm)) : nullptr;
}

Runtime* Context::OfObject(JSObject* obj) {
  JS::Realm* realm = JS::GetObjectRealmOrNull(obj);
  return realm != nullptr ? static_cast<Runtime*>(JS::GetRealmPrivate(realm)) : nullptr;
}

JSObject* Context::getIncumbentGlobal(JSContext* cx) { return JS::CurrentGlobalOrNull(cx); }

bool Context::enqueuePromiseJob(JSContext* cx, JS::HandleObject, JS::HandleObject job, JS::HandleObject,
                                JS::HandleObject) {
  Runtime* rt = Current(cx);
  if (rt == nullptr) rt = OfObject(job);
  if (rt == nullptr) {
    JS_ReportErrorASCII(cx, "a promise job outside every script scenario");
    return false;
  }
  return rt->Enqueue(job);
}

void Context::runJobs(JSContext*) {
  for (size_t i = 0; i < runtimes_.size(); ++i) runtimes_[i]->Drain();
}

bool Context::empty() const {
  return std::all_of(runtimes_.begin(), runtimes_.end(), [](const Runtime* rt) { return rt->jobs_empty(); });
}

js::UniquePtr<JS::JobQueue::SavedJobQueue> Context::saveJobQueue(JSContext*) {
  return nullptr;  // only the debugger interrupts a job queue; meridian runs none
}

void Context::RejectionTracker(JSContext*, bool, JS::HandleObject promise,
                               JS::PromiseRejectionHandlingState state, void*) {
  if (Runtime* rt = OfObject(promise)) rt->TrackRejection(promise, state);
}

JSObject* Context::ResolveHook(JSContext* cx, JS::HandleValue referencing, JS::HandleObject request) {
  Runtime* rt = Current(cx);
  JS::RootedString spec_str(cx, JS::GetModuleRequestSpecifier(cx, request));
  if (!spec_str || rt == nullptr) return nullptr;
  return rt->Resolve(referencing, ToUtf8(cx, spec_str));
}

// ---- Runtime
// -----------------------------------------------------------------------------------------------

Result<std::unique_ptr<Runtime>> Runtime::Create(RuntimeConfig config) {
  std::unique_ptr<Runtime> rt(new Runtime(std::move(config)));
  if (auto ok = rt->Setup(); !ok.ok()) return ok.error();
  return rt;
}

Result<void> Runtime::Setup() {
  const uint32_t heap = config_.options ? config_.options->heap_max_bytes : (256u << 20);
  auto context = Context::ForThisThread(heap);
  if (!context.ok()) return context.error();
  context_ = std::move(context).value();
  cx_ = context_->cx();
  context_->Add(this);

  global_.init(cx_);
  prelude_.init(cx_);
  make_response_.init(cx_);
  make_error_.init(cx_);
  vu_function_.init(cx_);
  iteration_done_.init(cx_);
  iteration_failed_.init(cx_);
  jobs_.init(cx_);
  rejections_.init(cx_);

  JS::RealmOptions realm;
  global_ = JS_NewGlobalObject(cx_, &kGlobalClass, nullptr, JS::FireOnNewGlobalHook, realm);
  if (!global_) return MakeError(ErrorCode::kInternal, "cannot create the JavaScript global");
  JS::SetRealmPrivate(JS::GetObjectRealmOrNull(global_), this);
  JSAutoRealm ar(cx_, global_);
  if (!JS::InitRealmStandardClasses(cx_)) return MakeError(ErrorCode::kInternal, "standard classes failed");

  JS::RootedObject native(cx_, JS_NewPlainObject(cx_));
  if (!native || !DefineNatives(cx_, native)) return MakeError(ErrorCode::kInternal, "natives failed");

  JS::CompileOptions opts(cx_);
  opts.setFileAndLine(kPreludeName, 1);
  JS::SourceText<mozilla::Utf8Unit> src;
  if (!src.init(cx_, kPreludeSource, std::strlen(kPreludeSource), JS::SourceOwnership::Borrowed)) {
    return MakeError(ErrorCode::kInternal, "prelude: out of memory");
  }
  JS::RootedValue factory(cx_);
  if (!JS::Evaluate(cx_, opts, src, &factory) || !factory.isObject()) {
    return MakeError(ErrorCode::kInternal, "prelude: " + TakeException());
  }
  JS::RootedValueArray<2> args(cx_);
  args[0].setObject(*native);
  args[1].setObject(*global_);
  JS::RootedValue exports(cx_);
  if (!JS::Call(cx_, JS::UndefinedHandleValue, factory, args, &exports) || !exports.isObject()) {
    return MakeError(ErrorCode::kInternal, "prelude: " + TakeException());
  }
  prelude_ = &exports.toObject();
  iteration_done_ = prelude("iterationDone");
  iteration_failed_ = prelude("iterationFailed");
  make_response_ = prelude("makeResponse");
  make_error_ = prelude("makeError");
  if (!iteration_done_ || !iteration_failed_ || !make_response_ || !make_error_) {
    return MakeError(ErrorCode::kInternal, "prelude: a function the runtime calls is missing");
  }

  if (config_.env != nullptr) config_.env->loop->AddDeadlineList(&iteration_deadlines_);
  return {};
}

Runtime::~Runtime() {
  if (config_.env != nullptr) config_.env->loop->RemoveDeadlineList(&iteration_deadlines_);
  timers_.clear();
  if (cx_ != nullptr) {
    if (global_) JS::SetRealmPrivate(JS::GetObjectRealmOrNull(global_), nullptr);
    jobs_.reset();
    tags_.clear();
    rejections_.reset();
    modules_.clear();
    global_.reset();
    prelude_.reset();
    make_response_.reset();
    make_error_.reset();
    vu_function_.reset();
    iteration_done_.reset();
    iteration_failed_.reset();
  }
  if (context_) context_->Remove(this);
}

JSObject* Runtime::prelude(const char* name) {
  JS::RootedValue v(cx_);
  if (!JS_GetProperty(cx_, prelude_, name, &v) || !v.isObject()) return nullptr;
  return &v.toObject();
}

// ---- modules
// -----------------------------------------------------------------------------------------------

JSObject* Runtime::LoadModule(const std::string& key) {
  if (auto it = modules_.find(key); it != modules_.end()) return it->second->get();
  std::string text;
  std::string file_name = key;
  if (key == "meridian") {
    text = kMeridianModuleSource;
    file_name = "meridian:module";
  } else {
    auto read = config_.files->Read(key);
    if (!read.ok()) {
      JS_ReportErrorUTF8(cx_, "%s", read.error().message.c_str());
      return nullptr;
    }
    text = std::move(read).value();
    NoteRead(key, text);
    file_name = config_.display_prefix + key;
  }
  JS::CompileOptions opts(cx_);
  opts.setFileAndLine(file_name.c_str(), 1);
  JS::SourceText<mozilla::Utf8Unit> src;
  if (!src.init(cx_, text.data(), text.size(), JS::SourceOwnership::Borrowed)) return nullptr;
  JS::RootedObject module(cx_, JS::CompileModule(cx_, opts, src));
  if (!module) return nullptr;
  JS::RootedString private_key(cx_, JS_NewStringCopyN(cx_, key.data(), key.size()));
  if (!private_key) return nullptr;
  JS::SetModulePrivate(module, JS::StringValue(private_key));
  auto rooted = std::make_unique<JS::PersistentRootedObject>(cx_, module);
  modules_.emplace(key, std::move(rooted));
  return module;
}

JSObject* Runtime::Resolve(JS::HandleValue referencing, const std::string& spec) {
  if (spec == "meridian" || spec == "k6") return LoadModule("meridian");
  std::string from_dir = entry_dir_;
  if (referencing.isString()) {
    JS::RootedString ref(cx_, referencing.toString());
    from_dir = DirOf(ToUtf8(cx_, ref));
  }
  if (spec.rfind("./", 0) != 0 && spec.rfind("../", 0) != 0) {
    JS_ReportErrorUTF8(
        cx_,
        "cannot import '%s': scripts import the built-in 'meridian' module and their own files "
        "by relative path ('./lib.js'); no packages, URLs or absolute paths",
        spec.c_str());
    return nullptr;
  }
  return LoadModule(NormalizePath(from_dir.empty() ? spec : from_dir + "/" + spec));
}

Result<ScriptInfo> Runtime::Init(const std::string& entry) {
  JSAutoRealm ar(cx_, global_);
  entry_dir_ = DirOf(entry);
  in_init_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{in_init_};

  // The 'meridian' module reads its exports from a hidden global property, removed after init.
  JS::RootedValue internal_v(cx_, JS::ObjectValue(*prelude_));
  JS::RootedSymbol sym(cx_);
  {
    JS::RootedString desc(cx_, JS_NewStringCopyZ(cx_, "meridian.internal"));
    sym = JS::GetSymbolFor(cx_, desc);
  }
  JS::RootedId sym_id(cx_, JS::PropertyKey::Symbol(sym));
  if (!JS_DefinePropertyById(cx_, global_, sym_id, internal_v, JSPROP_READONLY)) {
    return MakeError(ErrorCode::kInternal, "init: cannot define the meridian module");
  }

  JS::RootedObject module(cx_, LoadModule(entry));
  if (!module) return MakeError(ErrorCode::kInvalidArgument, TakeException());
  if (!JS::ModuleInstantiate(cx_, module)) return MakeError(ErrorCode::kInvalidArgument, TakeException());
  JS::RootedValue rval(cx_);
  if (!JS::ModuleEvaluate(cx_, module, &rval)) return MakeError(ErrorCode::kInvalidArgument, TakeException());
  Drain();
  if (rval.isObject()) {
    JS::RootedObject p(cx_, &rval.toObject());
    if (JS::IsPromiseObject(p) && JS::GetPromiseState(p) == JS::PromiseState::Rejected) {
      JS::RootedValue why(cx_, JS::GetPromiseResult(p));
      return MakeError(ErrorCode::kInvalidArgument, DescribeException(why));
    }
  }
  bool deleted = false;
  {
    JS::ObjectOpResult result;
    deleted = JS_DeletePropertyById(cx_, global_, sym_id, result);
  }
  (void)deleted;

  JS::RootedObject ns(cx_, JS::GetModuleNamespace(cx_, module));
  if (!ns) return MakeError(ErrorCode::kInternal, TakeException());
  ScriptInfo info;
  JS::RootedValue def(cx_), script(cx_), options(cx_);
  if (!JS_GetProperty(cx_, ns, "default", &def) || !JS_GetProperty(cx_, ns, "script", &script) ||
      !JS_GetProperty(cx_, ns, "options", &options)) {
    return MakeError(ErrorCode::kInvalidArgument, TakeException());
  }
  auto is_function = [&](JS::HandleValue v) { return v.isObject() && JS::IsCallable(&v.toObject()); };
  if (is_function(def)) {
    info.form = ScriptInfo::Form::kMeridian;
    vu_function_ = &def.toObject();
  } else if (is_function(script)) {
    info.form = ScriptInfo::Form::kConstellation;
    vu_function_ = &script.toObject();
  } else {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("{}: exports no VU function: write `export default async function () {{ ... }}` "
                    "(meridian/k6 form) or `export const script = async (axiosInstance) => {{ ... }}` "
                    "(Constellation form)",
                    entry));
  }
  form_ = info.form;
  for (const char* lifecycle : {"setup", "teardown"}) {
    // k6 runs these once per test and hands setup's result to every VU; silently skipping them would run the
    // VU function without its data.
    JS::RootedValue v(cx_);
    if (JS_GetProperty(cx_, ns, lifecycle, &v) && is_function(v)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: exports {}(): this version does not run setup/teardown (k6 runs them "
                                   "once per test); do one-time preparation in the script's init code (it "
                                   "runs once per worker, before any VU) or in a separate plan",
                                   entry, lifecycle));
    }
  }
  if (!options.isUndefined()) {
    JS::RootedObject json_global(cx_, global_);
    JS::RootedValue json_v(cx_), stringify(cx_), text(cx_);
    if (JS_GetProperty(cx_, json_global, "JSON", &json_v) && json_v.isObject()) {
      JS::RootedObject json_obj(cx_, &json_v.toObject());
      JS::RootedValueArray<1> a(cx_);
      a[0].set(options);
      if (JS_GetProperty(cx_, json_obj, "stringify", &stringify) &&
          JS::Call(cx_, JS::UndefinedHandleValue, stringify, a, &text) && text.isString()) {
        JS::RootedString str(cx_, text.toString());
        info.options = nlohmann::json::parse(ToUtf8(cx_, str), nullptr, false);
        if (info.options.is_discarded()) info.options = nullptr;
      } else {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("{}: options: cannot be turned into JSON: {}", entry, TakeException()));
      }
    }
  }
  return info;
}

// ---- errors
// ------------------------------------------------------------------------------------------------

std::string Runtime::DescribeException(JS::HandleValue v) {
  JS::RootedValue fn(cx_, JS::ObjectOrNullValue(prelude("describe")));
  if (fn.isObject()) {
    JS::RootedValueArray<1> a(cx_);
    a[0].set(v);
    JS::RootedValue out(cx_);
    if (JS::Call(cx_, JS::UndefinedHandleValue, fn, a, &out) && out.isString()) {
      JS::RootedString s(cx_, out.toString());
      return ToUtf8(cx_, s);
    }
    JS_ClearPendingException(cx_);
  }
  return "uncaught exception";
}

std::string Runtime::TakeException() {
  if (!JS_IsExceptionPending(cx_)) return "the JavaScript engine stopped (out of memory?)";
  JS::ExceptionStack stack(cx_);
  if (!JS::StealPendingExceptionStack(cx_, &stack)) return "uncatchable exception";
  JS::ErrorReportBuilder report(cx_);
  if (!report.init(cx_, stack, JS::ErrorReportBuilder::WithSideEffects) || report.report() == nullptr) {
    return "exception (no details)";
  }
  const JSErrorReport* r = report.report();
  std::string message = report.toStringResult() ? report.toStringResult().c_str() : "exception";
  if (r->filename != nullptr && r->lineno > 0) {
    return fmt::format("{}:{}:{}: {}", r->filename, r->lineno, r->column + 1, message);
  }
  return message;
}

void Runtime::ReportError(VuScript* vs, const std::string& message) {
  if (config_.env != nullptr) config_.env->recorder->RecordErrorExample(stats::ErrorKind::kScript, message);
  if (errors_logged_ < 10) {
    ++errors_logged_;
    LogWarn("script{}: {}{}", vs ? fmt::format(" vu {}", vs->vu.id()) : "", message,
            errors_logged_ == 10 ? " (further script errors are counted, not logged)" : "");
  }
}

void Runtime::TrackRejection(JS::HandleObject promise, JS::PromiseRejectionHandlingState state) {
  // A rejection nobody handles, outside the iteration's own chain (a floating promise): the iteration fails.
  // Decided once the job queue is empty: `await` attaches its handler only after a rejected promise exists.
  if (current_ == nullptr) return;
  if (state == JS::PromiseRejectionHandlingState::Unhandled) {
    if (!rejections_.append(promise)) return;
    rejection_tags_.push_back(Tag{current_, current_->generation, false});
    return;
  }
  for (size_t i = 0; i < rejections_.length(); ++i) {
    if (rejections_[i] == promise) rejections_[i].set(nullptr);
  }
}

void Runtime::ReportRejections() {
  if (rejections_.empty()) return;
  JSAutoRealm ar(cx_, global_);
  JS::RootedObject p(cx_);
  for (size_t i = 0; i < rejections_.length(); ++i) {
    p = rejections_[i];
    const Tag tag = rejection_tags_[i];
    if (!p || tag.dropped || tag.vu == nullptr || tag.vu->generation != tag.generation) continue;
    JS::RootedValue why(cx_, JS::GetPromiseResult(p));
    tag.vu->failed = true;
    ReportError(tag.vu, "unhandled promise rejection: " + DescribeException(why));
  }
  rejections_.clear();
  rejection_tags_.clear();
}

// ---- the job queue
// -----------------------------------------------------------------------------------------

bool Runtime::Enqueue(JS::HandleObject job) {
  if (!jobs_.append(job)) return false;
  tags_.push_back(Tag{current_, current_ ? current_->generation : 0, false});
  return true;
}

void Runtime::RunQueuedJobs() {
  JSAutoRealm ar(cx_, global_);
  JS::RootedObject job(cx_);
  JS::RootedValue rval(cx_);
  for (size_t i = 0; i < jobs_.length(); ++i) {
    job = jobs_[i];
    const Tag tag = tags_[i];
    jobs_[i].set(nullptr);
    if (tag.dropped || (tag.vu != nullptr && tag.vu->generation != tag.generation)) continue;  // abandoned
    current_ = tag.vu;
    if (!JS::Call(cx_, JS::UndefinedHandleValue, job, JS::HandleValueArray::empty(), &rval)) {
      const std::string why = TakeException();
      if (current_ != nullptr) MarkFinished(*current_, true, why);
    }
    current_ = nullptr;
  }
  jobs_.clear();
  tags_.clear();
}

void Runtime::Drain() {
  if (draining_) return;
  draining_ = true;
  // Iterations are finished once per call: finishing one starts the VU's next iteration, and one that never
  // waits for I/O is finished again at once; those wait for the loop's next turn, so timers (the end of the
  // duration, time-outs) and I/O are never starved.
  bool finished_once = false;
  while (true) {
    if (!jobs_.empty()) RunQueuedJobs();
    ReportRejections();
    if (finished_.empty() || start_depth_ > 0 || finished_once) break;
    FinishPending();
    finished_once = true;
  }
  draining_ = false;
  if (!finished_.empty() && !finish_deferred_ && config_.env != nullptr) {
    // Vu::FinishIteration must not run inside Iteration::Start: finish after this batch of events.
    finish_deferred_ = true;
    config_.env->loop->Defer([this] {
      finish_deferred_ = false;
      Drain();
    });
  }
}

void Runtime::MarkFinished(VuScript& vs, bool failed, const std::string& error) {
  if (!vs.running) return;
  if (failed && !error.empty()) ReportError(&vs, error);
  vs.running = false;
  finished_.push_back(Finished{&vs, vs.generation, failed || vs.failed});
}

void Runtime::FinishPending() {
  std::vector<Finished> done;
  done.swap(finished_);
  for (const Finished& f : done) {
    if (f.vu == nullptr || f.vu->generation != f.generation) continue;
    VuScript& vs = *f.vu;
    bool failed = f.failed;
    // An iteration that returned while its requests or timers were still pending did not await them: it
    // would start the next one at once and flood the target, its requests never measured.
    const bool missing_await = !failed && (!vs.requests.empty() || !vs.timers.empty());
    if (missing_await) {
      ReportError(&vs, MissingAwait(vs));
      trace_call_sites_ = true;
      failed = true;
    }
    ++vs.generation;  // anything still pending from this iteration is stale now
    iteration_deadlines_.Disarm(&vs);
    CountUnanswered(vs, missing_await ? "the iteration ended before the response (missing await)"
                                      : "the iteration failed before the response");
    DropTimersOf(vs);
    DropRequestsOf(vs);
    vs.group.clear();
    vs.vu.FinishIteration(failed);
  }
}

std::string Runtime::MissingAwait(const VuScript& vs) {
  size_t sleeps = 0, timers = 0;
  std::string site;
  for (const auto& r : vs.requests) {
    if (site.empty()) site = r->call_site;
  }
  for (uint32_t id : vs.timers) {
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;
    ++(it->second->promise ? sleeps : timers);
    if (site.empty()) site = it->second->call_site;
  }
  std::vector<std::string> what;
  const auto count = [&](size_t n, const char* one, const char* many) {
    if (n == 1) what.emplace_back(one);
    if (n > 1) what.push_back(fmt::format("{} {}", n, many));
  };
  count(vs.requests.size(), "a request", "requests");
  count(sleeps, "a sleep()", "sleep()s");
  count(timers, "a timer", "timers");
  std::string list;
  for (size_t i = 0; i < what.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == what.size() ? " and " : ", ") + what[i];
  }
  return fmt::format(
      "{}missing await: the iteration ended with {} still pending (await every http call and sleep(), "
      "or return the promise; requests sent and not awaited count as failed){}",
      site.empty() ? "" : site + ": ", list, site.empty() ? "; the next such iteration names the line" : "");
}

void Runtime::CountUnanswered(VuScript& vs, const char* why) {
  if (vs.requests.empty()) return;  // the usual end of an iteration: nothing to count, no clock read
  const int64_t now = MonoNanos();
  for (const auto& r : vs.requests) {
    if (r->connection == nullptr) continue;  // queued behind the VU's busy connections: never sent
    stats::RequestSample sample;
    sample.total_ns = now - r->started_ns;
    sample.error = stats::ErrorKind::kScript;
    vs.vu.RecordRequest(r->series, sample, why);
  }
}

std::string Runtime::CallSite() {
  if (!trace_call_sites_) return {};
  JS::RootedObject frame(cx_);
  if (!JS::CaptureCurrentStack(cx_, &frame, JS::StackCapture(JS::MaxFrames(16)))) {
    JS_ClearPendingException(cx_);
    return {};
  }
  JS::RootedString source(cx_);
  JS::RootedObject parent(cx_);
  constexpr auto kExclude = JS::SavedFrameSelfHosted::Exclude;
  while (frame) {
    if (JS::GetSavedFrameSource(cx_, nullptr, frame, &source, kExclude) != JS::SavedFrameResult::Ok) break;
    const std::string file = source ? ToUtf8(cx_, source) : std::string();
    if (file != kPreludeName) {
      uint32_t line = 0, column = 0;
      JS::GetSavedFrameLine(cx_, nullptr, frame, &line, kExclude);
      JS::GetSavedFrameColumn(cx_, nullptr, frame, &column, kExclude);
      return fmt::format("{}:{}:{}", file, line, column);
    }
    if (JS::GetSavedFrameParent(cx_, nullptr, frame, &parent, kExclude) != JS::SavedFrameResult::Ok) break;
    frame = parent;
  }
  return {};
}

// ---- iterations
// --------------------------------------------------------------------------------------------

void Runtime::StartIteration(VuScript& vs) {
  JSAutoRealm ar(cx_, global_);
  ++vs.generation;
  vs.running = true;
  vs.failed = false;
  vs.group.clear();
  vs.cookies.clear();
  const auto* o = options();
  if (o != nullptr && o->iteration_timeout_ns > 0) {
    iteration_deadlines_.Arm(&vs, MonoNanos() + o->iteration_timeout_ns);
  }
  ++start_depth_;
  current_ = &vs;
  JS::RootedValueArray<1> args(cx_);
  if (form_ == ScriptInfo::Form::kConstellation) {
    if (!vs.instance) {
      JS::RootedValue create(cx_, JS::ObjectOrNullValue(prelude("createInstance")));
      JS::RootedValue made(cx_);
      if (JS::Call(cx_, JS::UndefinedHandleValue, create, JS::HandleValueArray::empty(), &made) &&
          made.isObject()) {
        vs.instance = &made.toObject();
      }
    }
    if (vs.instance) args[0].setObject(*vs.instance);
  }
  // The VU function is called directly; what it returns (a promise, or a value of a plain function) settles
  // into the prelude's iterationDone / iterationFailed, whose reaction jobs carry this VU like every other
  // job.
  JS::RootedValue fn(cx_, JS::ObjectValue(*vu_function_));
  JS::RootedValue returned(cx_);
  if (!JS::Call(cx_, JS::UndefinedHandleValue, fn, args, &returned)) {
    MarkFinished(vs, true, TakeException());
  } else {
    JS::RootedObject promise(cx_, returned.isObject() ? &returned.toObject() : nullptr);
    if (!promise || !JS::IsPromiseObject(promise)) promise = JS::CallOriginalPromiseResolve(cx_, returned);
    if (!promise || !JS::AddPromiseReactions(cx_, promise, iteration_done_, iteration_failed_)) {
      MarkFinished(vs, true, TakeException());
    }
  }
  current_ = nullptr;
  Drain();
  --start_depth_;
}

void Runtime::CutOff(VuScript& vs, const std::string& why) {
  if (!vs.running) return;
  MarkFinished(vs, true, why);
  Drain();
}

void Runtime::AbortIteration(VuScript& vs) {
  ++vs.generation;
  vs.running = false;
  iteration_deadlines_.Disarm(&vs);
  DropTimersOf(vs);
  DropRequestsOf(vs);
  for (auto& f : finished_) {
    if (f.vu == &vs) f.vu = nullptr;
  }
}

void Runtime::Forget(VuScript& vs) {
  AbortIteration(vs);
  // Jobs of a VU that is gone must not run as anyone else's.
  for (auto& t : tags_) {
    if (t.vu == &vs) t.dropped = true;
  }
  for (auto& t : rejection_tags_) {
    if (t.vu == &vs) t.dropped = true;
  }
  if (current_ == &vs) current_ = nullptr;
}

// ---- timers
// ------------------------------------------------------------------------------------------------

uint32_t Runtime::AddTimer(VuScript& vs, int64_t delay_ns, int64_t interval_ns, JS::HandleObject fn,
                           JS::HandleObject args, JS::HandleObject promise) {
  const uint32_t id = next_timer_++;
  auto t = std::make_unique<ScriptTimer>(cx_, *this, id);
  t->owner = &vs;
  t->generation = vs.generation;
  t->interval_ns = interval_ns;
  t->fn = fn;
  t->args = args;
  t->promise = promise;
  t->call_site = CallSite();
  config_.env->loop->Schedule(t.get(), MonoNanos() + std::max<int64_t>(0, delay_ns));
  vs.timers.push_back(id);
  timers_.emplace(id, std::move(t));
  return id;
}

void Runtime::CancelTimer(uint32_t id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  config_.env->loop->Cancel(it->second.get());
  if (VuScript* owner = it->second->owner) {
    auto& v = owner->timers;
    if (auto pos = std::find(v.begin(), v.end(), id); pos != v.end()) {
      *pos = v.back();
      v.pop_back();
    }
  }
  timers_.erase(it);
}

void Runtime::DropTimersOf(VuScript& vs) {
  std::vector<uint32_t> ids;
  ids.swap(vs.timers);
  for (uint32_t id : ids) {
    if (auto it = timers_.find(id); it != timers_.end()) {
      config_.env->loop->Cancel(it->second.get());
      timers_.erase(it);
    }
  }
}

void Runtime::FireTimer(uint32_t id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  ScriptTimer* t = it->second.get();
  VuScript* owner = t->owner;
  if (owner == nullptr || owner->generation != t->generation) {
    CancelTimer(id);
    return;
  }
  JSAutoRealm ar(cx_, global_);
  current_ = owner;
  if (t->promise) {
    JS::RootedObject promise(cx_, t->promise);
    CancelTimer(id);
    if (!JS::ResolvePromise(cx_, promise, JS::UndefinedHandleValue))
      MarkFinished(*owner, true, TakeException());
  } else {
    JS::RootedValue fn(cx_, JS::ObjectValue(*t->fn));
    JS::RootedObject args_obj(cx_, t->args);
    if (t->interval_ns > 0) {
      config_.env->loop->Schedule(t, MonoNanos() + t->interval_ns);
    } else {
      CancelTimer(id);  // t is gone now; fn and args are rooted here
    }
    JS::RootedValueVector args(cx_);
    if (args_obj) {
      uint32_t n = 0;
      bool is_array = false;
      if (JS::IsArrayObject(cx_, args_obj, &is_array) && is_array && JS::GetArrayLength(cx_, args_obj, &n)) {
        JS::RootedValue item(cx_);
        for (uint32_t i = 0; i < n; ++i) {
          if (!JS_GetElement(cx_, args_obj, i, &item) || !args.append(item)) break;
        }
      }
    }
    JS::RootedValue ignored(cx_);
    if (!JS::Call(cx_, JS::UndefinedHandleValue, fn, args, &ignored)) {
      // An exception in a timer callback fails its iteration (Node would crash the process).
      MarkFinished(*owner, true, TakeException());
    }
  }
  current_ = nullptr;
  Drain();
}

// ---- origins and names
// -------------------------------------------------------------------------------------

Result<size_t> Runtime::OriginFor(const std::string& scheme, const std::string& host, uint16_t port,
                                  const std::string& host_header) {
  const std::string key = fmt::format("{}://{}:{}", scheme, host, port);
  if (auto it = origin_index_.find(key); it != origin_index_.end()) return it->second;
  // Scripts name their hosts at run time. Numeric addresses cost nothing; a name is resolved once per worker
  // (blocking this worker's loop for the lookup) and cached for the run.
  const int64_t timeout = config_.env->client->connect_timeout_ns;
  auto resolved = net::Resolve(host, port, timeout);
  if (!resolved.ok()) return resolved.error();
  if (resolved->endpoints.empty()) return MakeError(ErrorCode::kDns, fmt::format("{}: no address", host));
  auto o = std::make_unique<http::Origin>();
  o->host = host;
  o->host_header = host_header;
  o->endpoint = resolved->endpoints.front();
  o->tls = scheme == "https";
  origins_.push_back(std::move(o));
  origin_index_.emplace(key, origins_.size() - 1);
  return origins_.size() - 1;
}

Result<const Runtime::Target*> Runtime::TargetFor(const std::string& url) {
  if (auto it = targets_.find(url); it != targets_.end()) return &it->second;
  auto parsed = http::ParseUrl(url);
  if (!parsed.ok()) return parsed.error();
  auto origin = OriginFor(parsed->scheme, parsed->host, parsed->port, parsed->HostHeader());
  if (!origin.ok()) return origin.error();
  if (targets_.size() >= kMaxTargets) targets_.clear();
  auto [it, added] = targets_.emplace(url, Target{*origin, parsed->target, parsed->HostHeader()});
  return &it->second;
}

uint16_t Runtime::NameIndex(stats::NameEntry::Kind kind, uint16_t scenario, const std::string& group,
                            const std::string& name) {
  // The key is built in a buffer kept between calls: a lookup of a known name allocates nothing.
  std::string& key = name_key_;
  key.clear();
  key.push_back(static_cast<char>('0' + static_cast<int>(kind)));
  key.append(reinterpret_cast<const char*>(&scenario), sizeof scenario).push_back('\x1f');
  key.append(group).push_back('\x1f');
  key.append(name);
  if (auto it = name_cache_.find(key); it != name_cache_.end()) return it->second;
  const uint16_t index = config_.env->names->Intern(stats::NameEntry{kind, scenario, group, name});
  name_cache_.emplace(key, index);
  return index;
}

void Runtime::MaybeGC() {
  const int64_t now = MonoNanos();
  if (now - last_gc_ns_ < 1'000'000'000) return;
  last_gc_ns_ = now;
  JS_MaybeGC(cx_);
}

}  // namespace meridian::script
