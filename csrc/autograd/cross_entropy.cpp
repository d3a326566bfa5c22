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

c10::TypedOperatorHandle<Rows(const Tensor&, const Tensor&, const OptTensor&, double, double,
                              int64_t)>
lsce_forward_op() {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cookbook_ops::label_smoothing_cross_entropy_forward", "")
          .typed<Rows(const Tensor&, const Tensor&, const OptTensor&, double, double, int64_t)>();
  return op;
}

c10::TypedOperatorHandle<Tensor(const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
                                const Tensor&, double, double, int64_t)>
lsce_backward_op(bool composite) {
  using Sig = Tensor(const Tensor&, const Tensor&, const Tensor&, const OptTensor&, const Tensor&,
                     double, double, int64_t);
  static auto kernels =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cookbook_ops::label_smoothing_cross_entropy_backward", "")
          .typed<Sig>();
  if (!composite) {
    return kernels;
  }
  static auto closed_form =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cookbook_ops::label_smoothing_cross_entropy_backward_composite", "")
          .typed<Sig>();
  return closed_form;
}

c10::TypedOperatorHandle<Rows(const Tensor&, const Tensor&, const Tensor&, const OptTensor&, double,
                              double, int64_t)>
mixup_ce_forward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("cookbook_ops::mixup_cross_entropy_forward", "")
                       .typed<Rows(const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
                                   double, double, int64_t)>();
  return op;
}

c10::TypedOperatorHandle<Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                const OptTensor&, const Tensor&, double, double, int64_t)>
mixup_ce_backward_op(bool composite) {
  using Sig = Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
                     const Tensor&, double, double, int64_t);
  static auto kernels = c10::Dispatcher::singleton()
                            .findSchemaOrThrow("cookbook_ops::mixup_cross_entropy_backward", "")
                            .typed<Sig>();
  if (!composite) {
    return kernels;
  }
  static auto closed_form =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cookbook_ops::mixup_cross_entropy_backward_composite", "")
          .typed<Sig>();
  return closed_form;
}

c10::TypedOperatorHandle<SoftRows(const Tensor&, const Tensor&, const OptTensor&, double, double)>
soft_forward_op() {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cookbook_ops::soft_target_cross_entropy_forward", "")
          .typed<SoftRows(const Tensor&, const Tensor&, const OptTensor&, double, double)>();
  return op;
}

c10::TypedOperatorHandle<Tensor(const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
                                const Tensor&, const Tensor&, double, double)>
soft_backward_op(bool composite) {
  using Sig = Tensor(const Tensor&, const Tensor&, const Tensor&, const OptTensor&, const Tensor&,
                     const Tensor&, double, double);
  static auto kernels =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cookbook_ops::soft_target_cross_entropy_backward", "")
          .typed<Sig>();
  if (!composite) {
    return kernels;
  }
  static auto closed_form =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cookbook_ops::soft_target_cross_entropy_backward_composite", "")
          .typed<Sig>();
  return closed_form;
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
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, lse, correct] =
        lsce_forward_op().call(logits, target, weight, on_value, off_value, ignore_index);
    ctx->save_for_backward({logits, target, weight.value_or(Tensor()), lse});
    save_smoothing(ctx, on_value, off_value, ignore_index);
    ctx->mark_non_differentiable({lse, correct});
    return {loss, lse, correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Tensor grad_logits;
    if (ctx->needs_input_grad(0)) {
      const auto saved = ctx->get_saved_variables();
      // In a create_graph backward, GradMode is on: take the differentiable closed form.
      grad_logits =
          lsce_backward_op(at::GradMode::is_enabled())
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
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, lse, correct] = mixup_ce_forward_op().call(logits, target_a, target_b, weight,
                                                           on_value, off_value, ignore_index);
    ctx->save_for_backward({logits, target_a, target_b, weight.value_or(Tensor()), lse});
    save_smoothing(ctx, on_value, off_value, ignore_index);
    ctx->mark_non_differentiable({lse, correct});
    return {loss, lse, correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Tensor grad_logits;
    if (ctx->needs_input_grad(0)) {
      const auto saved = ctx->get_saved_variables();
      // The kernels take grad_loss (N, 2) contiguous.
      grad_logits =
          mixup_ce_backward_op(at::GradMode::is_enabled())
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
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, lse, target_sum, correct] =
        soft_forward_op().call(logits, target, weight, on_value, off_value);
    ctx->save_for_backward({logits, target, weight.value_or(Tensor()), lse, target_sum});
    ctx->saved_data["on_value"] = on_value;
    ctx->saved_data["off_value"] = off_value;
    ctx->mark_non_differentiable({lse, target_sum, correct});
    return {loss, lse, target_sum, correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Tensor grad_logits;
    if (ctx->needs_input_grad(0)) {
      const auto saved = ctx->get_saved_variables();
      grad_logits = soft_backward_op(at::GradMode::is_enabled())
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
