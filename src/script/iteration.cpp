// Script scenarios in the engine: a factory per worker (one SpiderMonkey context) and an iteration object per
// VU that runs the VU function as an async iteration on that context.
#include <fmt/format.h>

#include "core/clock.h"
#include "script/runtime.h"

namespace meridian::script {
namespace {

class ScriptIteration final : public loadgen::Iteration {
 public:
  explicit ScriptIteration(Runtime& rt) : rt_(rt) {}
  void Start(loadgen::Vu& vu) override {
    if (!vs_) vs_ = std::make_unique<VuScript>(rt_, vu);
    rt_.StartIteration(*vs_);
  }
  void Abort(loadgen::Vu&) override {
    if (vs_) rt_.AbortIteration(*vs_);
  }

 private:
  Runtime& rt_;
  std::unique_ptr<VuScript> vs_;
};

class ScriptFactory final : public loadgen::IterationFactory {
 public:
  ScriptFactory(std::shared_ptr<const ScriptOptions> options, loadgen::WorkerEnv& env)
      : options_(options), files_(options_->bundle), env_(env) {}
  ~ScriptFactory() override { env_.loop->Cancel(&gc_); }

  Result<void> Init(std::shared_ptr<const ScriptOptions> options) {
    RuntimeConfig config;
    config.options = options;
    config.files = &files_;
    config.env = &env_;
    auto rt = Runtime::Create(std::move(config));
    if (!rt.ok()) return rt.error();
    rt_ = std::move(rt).value();
    auto info = rt_->Init(options->bundle.entry);
    if (!info.ok())
      return MakeError(info.error().code,
                       fmt::format("scenarios.{}: {}", options->scenario, info.error().message));
    gc_.set([this] {
      rt_->MaybeGC();
      env_.loop->Schedule(&gc_, MonoNanos() + 1'000'000'000);
    });
    env_.loop->Schedule(&gc_, MonoNanos() + 1'000'000'000);
    return {};
  }

  std::unique_ptr<loadgen::Iteration> NewIteration(loadgen::Vu&) override {
    return std::make_unique<ScriptIteration>(*rt_);
  }

 private:
  std::shared_ptr<const ScriptOptions> options_;  // owns the bundle files_ reads
  BundleSource files_;
  loadgen::WorkerEnv& env_;
  std::unique_ptr<Runtime> rt_;
  net::FunctionTimer gc_;
};

}  // namespace

loadgen::IterationFactoryMaker ScriptFactoryMaker(std::shared_ptr<const ScriptOptions> options) {
  return [options](loadgen::WorkerEnv& env) -> Result<std::unique_ptr<loadgen::IterationFactory>> {
    if (env.names == nullptr) {
      return MakeError(ErrorCode::kInternal,
                       "script scenarios need the engine's name table (RunConfig::names)");
    }
    auto factory = std::make_unique<ScriptFactory>(options, env);
    if (auto ok = factory->Init(options); !ok.ok()) return ok.error();
    return std::unique_ptr<loadgen::IterationFactory>(std::move(factory));
  };
}

}  // namespace meridian::script
