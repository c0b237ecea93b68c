// Parity with the independent PyTorch reference (tests/ref/make_golden.py).
//
// For every golden config, in full and LoRA mode: logits and loss within 1e-5
// (relative L2), every gradient within 1e-4, the 10-step AdamW loss trajectory
// within 1e-4; for ternary configs the weight and activation codes must agree
// on ≥ 99.99% of elements (mismatches are reported; only rounding ties may
// differ). Golden files come from tests/golden, or from $TERN_GOLDEN_DIR when
// the torch regeneration test points here at freshly written ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/bitnet.h"
#include "optim/adamw.h"
#include "support/golden_file.h"

namespace tern {
namespace {

using testing::GoldenFile;
using testing::GoldenWeightSource;

constexpr double kForwardTol = 1e-5;
constexpr double kGradTol = 1e-4;
constexpr double kTrajectoryTol = 1e-4;
constexpr double kMinCodeAgreement = 0.9999;

std::string golden_dir() {
  const char* env = std::getenv("TERN_GOLDEN_DIR");
  return env != nullptr ? env : TERN_SOURCE_DIR "/tests/golden";
}

double relative_l2(std::span<const float> got, std::span<const float> want) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    diff += d * d;
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

struct GoldenCase {
  GoldenFile file;
  ModelConfig model;
  LoraConfig lora;
  AdamWConfig adamw;
  double lr = 0, clip = 0;
  int64_t batch = 0, seq = 0, steps = 0;
};

GoldenCase load_case(const std::string& name) {
  const std::string path = golden_dir() + "/" + name + ".tgld";
  Result<GoldenFile> file = GoldenFile::load(path);
  TERN_CHECK(file.ok(), file.status().message());
  GoldenCase c;
  c.file = std::move(file).value();
  const nlohmann::json j = nlohmann::json::parse(c.file.get("config").text());
  Result<ModelConfig> model = parse_model_config(j.at("model").dump());
  TERN_CHECK(model.ok(), model.status().message());
  c.model = model.value();
  c.lora.rank = j.at("lora").at("rank").get<int64_t>();
  c.lora.alpha = j.at("lora").at("alpha").get<float>();
  c.lora.targets.clear();
  for (const auto& t : j.at("lora").at("targets"))
    c.lora.targets.push_back(parse_linear_id(t.get<std::string>()).value());
  const auto& train = j.at("train");
  c.lr = train.at("lr").get<double>();
  c.adamw.beta1 = train.at("beta1").get<double>();
  c.adamw.beta2 = train.at("beta2").get<double>();
  c.adamw.eps = train.at("eps").get<double>();
  c.adamw.weight_decay = train.at("weight_decay").get<double>();
  c.clip = train.at("clip").get<double>();
  c.steps = train.at("steps").get<int64_t>();
  c.batch = j.at("batch").get<int64_t>();
  c.seq = j.at("seq").get<int64_t>();
  return c;
}

BitNetModel make_model(const GoldenCase& c, bool lora) {
  GoldenWeightSource base(c.file, "param/");
  Result<BitNetModel> model = lora ? BitNetModel::create_lora(c.model, c.lora, base, /*seed=*/1)
                                   : BitNetModel::create_full(c.model, base);
  TERN_CHECK(model.ok(), model.status().message());
  if (lora) {
    GoldenWeightSource adapters(c.file, "lora/param/");
    const Status s = model.value().load_trainable(adapters);
    TERN_CHECK(s.ok(), s.message());
  }
  return std::move(model).value();
}

// Counts code disagreements between the model's last forward and the reference.
struct CodeStats {
  int64_t weight_total = 0, weight_mismatch = 0, act_total = 0, act_mismatch = 0;
};

CodeStats compare_codes(const BitNetModel& model, const GoldenFile& file) {
  CodeStats stats;
  for (int64_t l = 0; l < model.config().layers; ++l) {
    for (int i = 0; i < kNumLinears; ++i) {
      const auto id = static_cast<LinearId>(i);
      const std::string name = linear_tensor_name(l, id);
      const BitNetModel::Quantization q = model.quantization(l, id);
      const auto wcodes = file.get("full/wcodes/" + name).i8();
      for (int64_t r = 0; r < q.weights->rows; ++r) {
        for (int64_t col = 0; col < q.weights->cols; ++col) {
          ++stats.weight_total;
          if (q.weights->code(r, col) != wcodes[static_cast<size_t>(r * q.weights->cols + col)]) {
            ++stats.weight_mismatch;
          }
        }
      }
      EXPECT_NEAR(q.weights->scale, file.get("full/wscale/" + name).f32()[0],
                  1e-6 * std::fabs(q.weights->scale))
          << name;
      const auto acodes = file.get("full/acodes/" + name).i8();
      EXPECT_EQ(acodes.size(), q.activation_codes.size()) << name;
      for (size_t k = 0; k < acodes.size(); ++k) {
        ++stats.act_total;
        if (q.activation_codes[k] != acodes[k]) ++stats.act_mismatch;
      }
      EXPECT_LT(relative_l2(q.activation_scales, file.get("full/ascale/" + name).f32()),
                kForwardTol)
          << name;
    }
  }
  return stats;
}

class ParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void run(bool lora) {
    const GoldenCase c = load_case(GetParam());
    const std::string mode = lora ? "lora/" : "full/";
    BitNetModel model = make_model(c, lora);
    const auto tokens = c.file.get("tokens").i32();
    const auto labels = c.file.get("labels").i32();

    // Forward: logits and loss.
    const float loss = model.forward(tokens, labels, c.batch, c.seq);
    const double logits_err = relative_l2(model.logits(), c.file.get(mode + "logits").f32());
    const float want_loss = c.file.get(mode + "loss").f32()[0];
    EXPECT_LT(logits_err, kForwardTol);
    EXPECT_LT(std::fabs(loss - want_loss) / std::fabs(want_loss), kForwardTol)
        << "loss " << loss << " vs " << want_loss;
    if (!lora && c.model.linear == LinearKind::kTernary) {
      const CodeStats s = compare_codes(model, c.file);
      std::cout << "[codes] " << GetParam() << ": weight mismatches " << s.weight_mismatch << "/"
                << s.weight_total << ", activation mismatches " << s.act_mismatch << "/"
                << s.act_total << "\n";
      RecordProperty("weight_code_mismatches", std::to_string(s.weight_mismatch));
      RecordProperty("activation_code_mismatches", std::to_string(s.act_mismatch));
      EXPECT_GE(1.0 - double(s.weight_mismatch) / s.weight_total, kMinCodeAgreement);
      EXPECT_GE(1.0 - double(s.act_mismatch) / s.act_total, kMinCodeAgreement);
    }

    // Backward: every trainable gradient.
    model.grads().zero();
    model.backward(1.0f);
    double worst_grad = 0.0;
    for (const TensorInfo& info : model.layout().tensors()) {
      const double err =
          relative_l2(model.grads().view(info), c.file.get(mode + "grad/" + info.name).f32());
      worst_grad = std::max(worst_grad, err);
      EXPECT_LT(err, kGradTol) << info.name;
    }

    // 10 AdamW steps from the same start.
    BitNetModel fresh = make_model(c, lora);
    AdamW adamw(fresh.layout(), c.adamw);
    const auto want = c.file.get(mode + "losses").f32();
    ASSERT_EQ(static_cast<int64_t>(want.size()), c.steps + 1);
    double worst_step = 0.0;
    for (int64_t step = 0; step <= c.steps; ++step) {
      const float l = fresh.forward(tokens, labels, c.batch, c.seq);
      const double err = std::fabs(l - want[static_cast<size_t>(step)]) /
                         std::fabs(want[static_cast<size_t>(step)]);
      worst_step = std::max(worst_step, err);
      EXPECT_LT(err, kTrajectoryTol)
          << "step " << step << ": " << l << " vs " << want[static_cast<size_t>(step)];
      if (step == c.steps) break;
      fresh.grads().zero();
      fresh.backward(1.0f);
      clip_grad_norm(fresh.grads(), fresh.layout(), c.clip);
      adamw.step(fresh.params(), fresh.grads(), c.lr);
    }
    std::cout << "[parity] " << GetParam() << " " << (lora ? "lora" : "full") << ": logits "
              << logits_err << ", worst grad " << worst_grad << ", worst trajectory step "
              << worst_step << "\n";
  }
};

TEST_P(ParityTest, parity_full) {
  run(/*lora=*/false);
}
TEST_P(ParityTest, parity_lora) {
  run(/*lora=*/true);
}

INSTANTIATE_TEST_SUITE_P(Golden, ParityTest,
                         ::testing::Values("ternary_relu2_gqa", "ternary_silu_untied",
                                           "dense_silu_llama", "dense_relu2_gqa"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
