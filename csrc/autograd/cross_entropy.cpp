// Autograd of the cross-entropy ops, in C++: the Autograd kernels of
//   cookbook_ops::label_smoothing_cross_entropy_forward (one target slot)
//   cookbook_ops::mixup_cross_entropy_forward          (two target slots)
//   cookbook_ops::soft_target_cross_entropy_forward    (probability targets; also saves the
//                                                        target's weighted row sums)
// for the extension's CPU and CUDA kernels (and the reference fallback on other devices). The
// formula is the one cookbook_ops/ops/cross_entropy.py registers in Python for the Triton twins
// and for a build without this library: save logits, targets, weight and the per-row lse;
// backward runs the backward op of the same dispatch key. A Python autograd kernel costs more
// host time per call than a small problem's whole kernel; this one costs about a dispatch.
//
// Double backward (create_graph=True): the kernels' backward is not differentiable again, so
// the gradient is then the backward's closed form in ATen operators, the op
// <backward>_composite (registered in Python from the reference, CompositeImplicitAutograd,
// lse recomputed from the logits): exact to every order, as the Python formula is.
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <vector>

namespace cookbook_ops {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using Rows = std::tuple<Tensor, Tensor, Tensor>;
using SoftRows = std::tuple<Tensor, Tensor, Tensor, Tensor>;
using OptTensor = std::optional<Tensor>;

OptTensor optional_of(const Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

using LsceForward = Rows(const Tensor&, const Tensor&, const OptTensor&, double, double, int64_t);
using LsceBackward = Tensor(const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
                            const Tensor&, double, double, int64_t);
using MixupForward = Rows(const Tensor&, const Tensor&, const Tensor&, const OptTensor&, double,
                          double, int64_t);
using MixupBackward = Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                             const OptTensor&, const Tensor&, double, double, int64_t);
using SoftForward = SoftRows(const Tensor&, const Tensor&, const OptTensor&, double, double);
using SoftBackward = Tensor(const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
                            const Tensor&, const Tensor&, double, double);

// The op ``name`` with signature Sig, looked up once per (Sig, name) call site.
template <typename Sig>
c10::TypedOperatorHandle<Sig> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

// What a backward runs: the kernels' backward op, or in a create_graph backward (GradMode on)
// its differentiable closed form, the op named ``closed_form`` (looked up only then: that rare path
// may pay the lookup, and a library loaded without the Python package never needs it).
template <typename Sig>
c10::TypedOperatorHandle<Sig> backward_op(const c10::TypedOperatorHandle<Sig>& kernels,
                                          const char* closed_form) {
  return at::GradMode::is_enabled() ? find_op<Sig>(closed_form) : kernels;
}

void save_smoothing(AutogradContext* ctx, double on_value, double off_value, int64_t ignore_index) {
  ctx->saved_data["on_value"] = on_value;
  ctx->saved_data["off_value"] = off_value;
  ctx->saved_data["ignore_index"] = ignore_index;
}

class LabelSmoothingCrossEntropy : public torch::autograd::Function<LabelSmoothingCrossEntropy> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& logits, const Tensor& target,
                               const OptTensor& weight, double on_value, double off_value,
                               int64_t ignore_index) {
    static const auto forward_op =
        find_op<LsceForward>("cookbook_ops::label_smoothing_cross_entropy_forward");
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, lse, correct] =
        forward_op.call(logits, target, weight, on_value, off_value, ignore_index);
    ctx->save_for_backward({logits, target, weight.value_or(Tensor()), lse});
    save_smoothing(ctx, on_value, off_value, ignore_index);
    ctx->mark_non_differentiable({lse, correct});
    return {loss, lse, correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Tensor grad_logits;
    static const auto kernels =
        find_op<LsceBackward>("cookbook_ops::label_smoothing_cross_entropy_backward");
    static constexpr const char* closed_form =
        "cookbook_ops::label_smoothing_cross_entropy_backward_composite";
    if (ctx->needs_input_grad(0)) {
      const auto saved = ctx->get_saved_variables();
      // In a create_graph backward, GradMode is on: take the differentiable closed form.
      grad_logits =
          backward_op(kernels, closed_form)
              .call(grads[0], saved[0], saved[1], optional_of(saved[2]), saved[3],
                    ctx->saved_data["on_value"].toDouble(), ctx->saved_data["off_value"].toDouble(),
                    ctx->saved_data["ignore_index"].toInt());
    }
    return {grad_logits, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

class MixupCrossEntropy : public torch::autograd::Function<MixupCrossEntropy> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& logits, const Tensor& target_a,
                               const Tensor& target_b, const OptTensor& weight, double on_value,
                               double off_value, int64_t ignore_index) {
    static const auto forward_op =
        find_op<MixupForward>("cookbook_ops::mixup_cross_entropy_forward");
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, lse, correct] =
        forward_op.call(logits, target_a, target_b, weight, on_value, off_value, ignore_index);
    ctx->save_for_backward({logits, target_a, target_b, weight.value_or(Tensor()), lse});
    save_smoothing(ctx, on_value, off_value, ignore_index);
    ctx->mark_non_differentiable({lse, correct});
    return {loss, lse, correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Tensor grad_logits;
    static const auto kernels =
        find_op<MixupBackward>("cookbook_ops::mixup_cross_entropy_backward");
    static constexpr const char* closed_form =
        "cookbook_ops::mixup_cross_entropy_backward_composite";
    if (ctx->needs_input_grad(0)) {
      const auto saved = ctx->get_saved_variables();
      // The kernels take grad_loss (N, 2) contiguous.
      grad_logits =
          backward_op(kernels, closed_form)
              .call(grads[0].contiguous(), saved[0], saved[1], saved[2], optional_of(saved[3]),
                    saved[4], ctx->saved_data["on_value"].toDouble(),
                    ctx->saved_data["off_value"].toDouble(),
                    ctx->saved_data["ignore_index"].toInt());
    }
    return {grad_logits, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// The target is differentiated by the reference formula only (the public function routes a
// target that requires grad there); the kernels differentiate the logits.
class SoftTargetCrossEntropy : public torch::autograd::Function<SoftTargetCrossEntropy> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& logits, const Tensor& target,
                               const OptTensor& weight, double on_value, double off_value) {
    static const auto forward_op =
        find_op<SoftForward>("cookbook_ops::soft_target_cross_entropy_forward");
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, lse, target_sum, correct] =
        forward_op.call(logits, target, weight, on_value, off_value);
    ctx->save_for_backward({logits, target, weight.value_or(Tensor()), lse, target_sum});
    ctx->saved_data["on_value"] = on_value;
    ctx->saved_data["off_value"] = off_value;
    ctx->mark_non_differentiable({lse, target_sum, correct});
    return {loss, lse, target_sum, correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Tensor grad_logits;
    static const auto kernels =
        find_op<SoftBackward>("cookbook_ops::soft_target_cross_entropy_backward");
    static constexpr const char* closed_form =
        "cookbook_ops::soft_target_cross_entropy_backward_composite";
    if (ctx->needs_input_grad(0)) {
      const auto saved = ctx->get_saved_variables();
      grad_logits = backward_op(kernels, closed_form)
                        .call(grads[0], saved[0], saved[1], optional_of(saved[2]), saved[3],
                              saved[4], ctx->saved_data["on_value"].toDouble(),
                              ctx->saved_data["off_value"].toDouble());
    }
    return {grad_logits, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Rows as_rows(const variable_list& out) { return {out[0], out[1], out[2]}; }

Rows label_smoothing_cross_entropy_autograd(const Tensor& logits, const Tensor& target,
                                            const OptTensor& weight, double on_value,
                                            double off_value, int64_t ignore_index) {
  return as_rows(
      LabelSmoothingCrossEntropy::apply(logits, target, weight, on_value, off_value, ignore_index));
}

Rows mixup_cross_entropy_autograd(const Tensor& logits, const Tensor& target_a,
                                  const Tensor& target_b, const OptTensor& weight, double on_value,
                                  double off_value, int64_t ignore_index) {
  return as_rows(MixupCrossEntropy::apply(logits, target_a, target_b, weight, on_value, off_value,
                                          ignore_index));
}

SoftRows soft_target_cross_entropy_autograd(const Tensor& logits, const Tensor& target,
                                            const OptTensor& weight, double on_value,
                                            double off_value) {
  const auto out = SoftTargetCrossEntropy::apply(logits, target, weight, on_value, off_value);
  return {out[0], out[1], out[2], out[3]};
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, Autograd, m) {
  m.impl("soft_target_cross_entropy_forward", &cookbook_ops::soft_target_cross_entropy_autograd);
  m.impl("label_smoothing_cross_entropy_forward",
         &cookbook_ops::label_smoothing_cross_entropy_autograd);
  m.impl("mixup_cross_entropy_forward", &cookbook_ops::mixup_cross_entropy_autograd);
}
