#pragma once
// Internal to script/: the thread's SpiderMonkey context, and one Runtime per script scenario on it.
//
// SpiderMonkey allows one context per thread, and a worker thread may run several script scenarios: the
// Context is shared by every Runtime of its thread, and each Runtime is a realm of it (its own global,
// prelude, modules and VU function; the realm's private pointer finds the Runtime).
//
// Which VU is running? Every VU of a scenario shares one global, so the runtime tracks the "current VU" and
// carries it across asynchronous boundaries itself: the Context is the promise job queue (JS::JobQueue) and
// hands each job to the Runtime whose realm queued it, and every job is tagged with the VU (and the VU's
// iteration generation) that was current when the job was queued. The
// natives that start asynchronous work (requests, timers, sleep) record their VU too and make it current
// again when they resolve. A job or timer whose generation is stale (the iteration timed out or was cut off)
// is dropped, which is how an abandoned iteration stops.

#include <js/GCVector.h>
#include <js/Promise.h>
#include <js/RootingAPI.h>
#include <jsapi.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "http/client_connection.h"
#include "loadgen/iteration.h"
#include "net/event_loop.h"
#include "script/script.h"

namespace meridian::script {

class Runtime;
class PendingRequest;

// Where module sources and open() data come from.
class FileSource {
 public:
  virtual ~FileSource() = default;
  // `key` is a normalised relative path.
  virtual Result<std::string> Read(const std::string& key) = 0;
};

// Files from a bundle (agents, Inspect): nothing outside it exists. The bundle must outlive the source.
class BundleSource final : public FileSource {
 public:
  explicit BundleSource(const Bundle& b) : bundle_(b) {}
  Result<std::string> Read(const std::string& key) override;

 private:
  const Bundle& bundle_;
};

// A script VU: one per loadgen::Vu of a script scenario, owned by its iteration object.
class VuScript final : public net::DeadlineNode {
 public:
  VuScript(Runtime& rt, loadgen::Vu& vu);
  ~VuScript() override;

  void OnDeadline() override;  // the iteration time-out

  Runtime& rt;
  loadgen::Vu& vu;
  uint32_t generation = 0;  // bumped when an iteration starts and when it is cut off
  bool running = false;
  bool failed = false;
  std::string group;                         // the current group path ("::login")
  JS::PersistentRooted<JSObject*> instance;  // the Constellation axios instance, made on first use
  std::vector<uint32_t> timers;              // ids of this VU's armed timers
  // The VU's cookie jar (k6: reset when an iteration starts): per origin, name -> value, in arrival order.
  std::unordered_map<size_t, std::vector<std::pair<std::string, std::string>>> cookies;
  // Connections per origin of Runtime::origins: up to kConnectionsPerOrigin concurrent requests per origin;
  // further requests of a Promise.all wait in `queued`.
  std::vector<std::vector<std::unique_ptr<http::ClientConnection>>> pools;
  std::vector<std::unique_ptr<PendingRequest>> requests;  // in flight or queued
  static constexpr size_t kConnectionsPerOrigin = 6;
};

struct RuntimeConfig {
  std::shared_ptr<const ScriptOptions> options;  // may be null for inspection
  FileSource* files = nullptr;
  loadgen::WorkerEnv* env = nullptr;  // null: init only (no requests, timers or VUs)
  std::string display_prefix;         // prepended to file names in messages (the plan's directory)
  // LoadBundle: record every file read.
  std::function<void(const std::string& key, const std::string& text)> on_read;
};

// The thread's context (created by the first Runtime of the thread, destroyed with the last).
class Context final : public JS::JobQueue {
 public:
  static Result<std::shared_ptr<Context>> ForThisThread(uint32_t heap_max_bytes);
  ~Context() override;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  JSContext* cx() const { return cx_; }
  void Add(Runtime* rt) { runtimes_.push_back(rt); }
  void Remove(Runtime* rt);
  // The Runtime of the current realm (null outside every runtime's realm).
  static Runtime* Current(JSContext* cx);
  static Runtime* OfObject(JSObject* obj);

  // JS::JobQueue: jobs go to the runtime whose realm queues them.
  JSObject* getIncumbentGlobal(JSContext* cx) override;
  bool enqueuePromiseJob(JSContext* cx, JS::HandleObject promise, JS::HandleObject job,
                         JS::HandleObject allocationSite, JS::HandleObject incumbentGlobal) override;
  void runJobs(JSContext* cx) override;
  bool empty() const override;

 private:
  Context() = default;
  js::UniquePtr<SavedJobQueue> saveJobQueue(JSContext*) override;
  static void RejectionTracker(JSContext* cx, bool muted, JS::HandleObject promise,
                               JS::PromiseRejectionHandlingState state, void* data);
  static JSObject* ResolveHook(JSContext* cx, JS::HandleValue referencing, JS::HandleObject request);

  JSContext* cx_ = nullptr;
  std::vector<Runtime*> runtimes_;
};

class Runtime final {
 public:
  static Result<std::unique_ptr<Runtime>> Create(RuntimeConfig config);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Compiles and evaluates the entry module and its imports (the init code); finds the exports.
  Result<ScriptInfo> Init(const std::string& entry);

  // Iterations (loop thread).
  void StartIteration(VuScript& vs);
  void CutOff(VuScript& vs, const std::string& why);  // fails and finishes the iteration now
  void AbortIteration(VuScript& vs);                  // drops it without finishing (graceful stop)
  void Forget(VuScript& vs);                          // the VU is going away

  // The promise jobs of this runtime's realm (Context hands them over).
  bool Enqueue(JS::HandleObject job);
  bool jobs_empty() const { return jobs_.empty(); }
  // A promise of this realm was rejected with no handler, or got one later.
  void TrackRejection(JS::HandleObject promise, JS::PromiseRejectionHandlingState state);
  // Resolves an import of a module of this realm.
  JSObject* Resolve(JS::HandleValue referencing, const std::string& specifier);

  // ---- for the natives (natives.cpp) ----
  // Natives run in the realm of the script calling them, which is their runtime's.
  static Runtime& From(JSContext* cx) { return *Context::Current(cx); }
  JSContext* cx() const { return cx_; }
  VuScript* current() const { return current_; }
  void SetCurrent(VuScript* vs) { current_ = vs; }
  JSObject* global() const { return global_; }
  bool in_init() const { return in_init_; }
  loadgen::WorkerEnv* env() const { return config_.env; }
  const ScriptOptions* options() const { return config_.options.get(); }
  FileSource* files() const { return config_.files; }
  void NoteRead(const std::string& key, const std::string& text) {
    if (config_.on_read) config_.on_read(key, text);
  }
  const std::string& entry_dir() const { return entry_dir_; }
  const std::string& display_prefix() const { return config_.display_prefix; }

  // Runs queued jobs and finishes iterations that completed; safe to call re-entrantly (a nested call
  // returns at once and the outer one does the work).
  void Drain();
  // An iteration ended (done/fail natives, time-out): finished after the job queue is drained.
  void MarkFinished(VuScript& vs, bool failed, const std::string& error);
  // Describes a thrown value: "message (file.js:12:5)".
  std::string DescribeException(JS::HandleValue v);
  // Takes the pending exception and describes it.
  std::string TakeException();
  // Records an iteration error (examples in the summary; the first ones are also logged).
  void ReportError(VuScript* vs, const std::string& message);
  // Where the script called the native now running ("file.js:12:5": the innermost frame outside the
  // prelude), once call sites are traced: from the first iteration that ended with a request or timer still
  // pending on, so that the next such iteration's error names the line. "" otherwise (stack captures cost).
  std::string CallSite();

  // Timers and sleep.
  uint32_t AddTimer(VuScript& vs, int64_t delay_ns, int64_t interval_ns, JS::HandleObject fn,
                    JS::HandleObject args, JS::HandleObject promise);
  void CancelTimer(uint32_t id);
  void FireTimer(uint32_t id);

  // The origin index for scheme/host/port, resolving on first use. Errors are kDns.
  Result<size_t> OriginFor(const std::string& scheme, const std::string& host, uint16_t port,
                           const std::string& host_header);
  const http::Origin& origin(size_t i) const { return *origins_[i]; }

  // A request URL parsed: its origin and what goes on the request line. Scripts request the same URLs over
  // and over, so they are kept (up to kMaxTargets, then forgotten and parsed again). Errors: the URL's (bad
  // URL) or kDns (the host did not resolve; not kept, so it is tried again).
  struct Target {
    size_t origin = 0;
    std::string path;
    std::string host_header;
  };
  Result<const Target*> TargetFor(const std::string& url);
  static constexpr size_t kMaxTargets = 4096;

  // The name-table index of a request, check or group of the current scenario.
  uint16_t NameIndex(stats::NameEntry::Kind kind, uint16_t scenario, const std::string& group,
                     const std::string& name);

  // NativeRequest's conversion buffers, kept between requests: converting a method, URL and series name
  // allocates nothing once they have grown.
  struct RequestScratch {
    std::string method, url, name;
  };
  RequestScratch& request_scratch() { return request_scratch_; }

  // Requests: start now or queue behind the VU's busy connections.
  void Dispatch(VuScript& vs, PendingRequest* r);
  void OnRequestDone(VuScript& vs, PendingRequest* r);

  JSObject* prelude(const char* name);                        // a function the prelude exported
  JSObject* make_response() const { return make_response_; }  // the prelude's makeResponse
  JSObject* make_error() const { return make_error_; }        // and makeError

  void MaybeGC();

 private:
  explicit Runtime(RuntimeConfig config);
  Result<void> Setup();
  JSObject* LoadModule(const std::string& key);
  void RunQueuedJobs();
  void ReportRejections();
  void FinishPending();
  // The "missing await" error of an iteration that ended with requests or timers still pending.
  std::string MissingAwait(const VuScript& vs);
  // Requests of an ending iteration that were sent and will never be answered: counted as failed, `why`.
  void CountUnanswered(VuScript& vs, const char* why);
  void DropTimersOf(VuScript& vs);
  void DropRequestsOf(VuScript& vs);

  RuntimeConfig config_;
  std::shared_ptr<Context> context_;
  JSContext* cx_ = nullptr;
  JS::PersistentRooted<JSObject*> global_;
  JS::PersistentRooted<JSObject*> prelude_;  // the object of prelude functions
  JS::PersistentRooted<JSObject*> make_response_;
  JS::PersistentRooted<JSObject*> make_error_;
  JS::PersistentRooted<JSObject*> vu_function_;     // default export or `script`
  JS::PersistentRooted<JSObject*> iteration_done_;  // reactions to the VU function's promise
  JS::PersistentRooted<JSObject*> iteration_failed_;
  std::unordered_map<std::string, std::unique_ptr<JS::PersistentRootedObject>> modules_;
  std::string entry_dir_;
  ScriptInfo::Form form_ = ScriptInfo::Form::kMeridian;

  // The job queue and its tags.
  struct Tag {
    VuScript* vu = nullptr;
    uint32_t generation = 0;
    bool dropped = false;  // its VU is gone
  };
  JS::PersistentRooted<JS::GCVector<JSObject*, 0, js::SystemAllocPolicy>> jobs_;
  std::vector<Tag> tags_;
  // Promises rejected with no handler yet, and their VUs; reported if still unhandled after the queue drains.
  JS::PersistentRooted<JS::GCVector<JSObject*, 0, js::SystemAllocPolicy>> rejections_;
  std::vector<Tag> rejection_tags_;
  VuScript* current_ = nullptr;
  bool draining_ = false;
  int start_depth_ = 0;
  bool in_init_ = false;
  bool finish_deferred_ = false;
  struct Finished {
    VuScript* vu;
    uint32_t generation;
    bool failed;
  };
  std::vector<Finished> finished_;

  class ScriptTimer;
  std::unordered_map<uint32_t, std::unique_ptr<ScriptTimer>> timers_;
  uint32_t next_timer_ = 1;

  std::vector<std::unique_ptr<http::Origin>> origins_;
  std::unordered_map<std::string, size_t> origin_index_;
  std::unordered_map<std::string, Target> targets_;
  std::unordered_map<std::string, uint16_t> name_cache_;
  std::string name_key_;  // NameIndex's key buffer
  RequestScratch request_scratch_;
  net::DeadlineList iteration_deadlines_;
  uint32_t errors_logged_ = 0;
  int64_t last_gc_ns_ = 0;
  bool trace_call_sites_ = false;  // see CallSite
};

// One request of a script: serialised, sent on one of the VU's connections, resolved or rejected later.
class PendingRequest final : public http::ClientHandler, public net::Timer {
 public:
  PendingRequest(Runtime& rt, VuScript& vs) : promise(rt.cx()), config(rt.cx()), rt_(rt), vs_(vs) {}
  ~PendingRequest() override {
    if (armed()) rt_.env()->loop->Cancel(this);
  }

  void OnResponse(const http::ResponseEvent& event) override;
  // The request's own time-out (config.timeout), or the delivery of a failure found before sending.
  void OnTimer() override;

  JS::PersistentRooted<JSObject*> promise;
  JS::PersistentRooted<JSObject*> config;
  std::string bytes;
  std::string headers;
  std::string body;
  uint8_t response_type = 0;  // index into the prelude's TYPES
  size_t origin = 0;
  uint16_t series = 0;
  bool head = false;
  bool idempotent = true;
  bool capture = true;
  int64_t timeout_ns = 0;
  int64_t started_ns = 0;
  http::ClientConnection* connection = nullptr;  // set once sent
  std::string early_error;                       // set: fails with kDns without sending
  std::string call_site;                         // Runtime::CallSite() when made

 private:
  Runtime& rt_;
  VuScript& vs_;
  std::string timeout_message_;
};

// Defines the natives on `native` (natives.cpp).
bool DefineNatives(JSContext* cx, JS::HandleObject native);

// The prelude's source (prelude.cpp): a classic script evaluating to a function (native, global) that
// installs console, timers and __VU/__ITER, and returns the object of prelude functions.
extern const char kPreludeSource[];
// The built-in 'meridian' module's source.
extern const char kMeridianModuleSource[];

}  // namespace meridian::script
