// Autograd of the mixup blend in C++: the Autograd kernel of cookbook_ops::mixup_forward for
// the extension's CPU and CUDA kernels (and the reference fallback on other devices), the
// formula cookbook_ops/ops/mixup.py registers in Python for the Triton twin and for a build
// without this library. A Python autograd kernel costs more host time per call than a small
// blend's whole kernel; this one costs about a dispatch.
//
// out_i = lam_i x_i + (1 - lam_i) x_index[i]:
//   d/dx: cookbook_ops::mixup_backward of the same dispatch key (its own autograd, registered
//         in Python, makes double backward exact);
//   d/dlam_i = <grad_out_i, x_i - x_index[i]> in lam's op-math precision, in ATen operators
//         (differentiable again).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace cookbook_ops {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using BlendSig = Tensor(const Tensor&, const Tensor&, const Tensor&);

c10::TypedOperatorHandle<BlendSig> blend_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<BlendSig>();
}

// The dense layout the kernels run in: channels_last when t is, else contiguous.
Tensor dense(const Tensor& t) {
  if (t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    return t;
  }
  return t.contiguous();
}

class Mixup : public torch::autograd::Function<Mixup> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& lam,
                        const Tensor& index) {
    static const auto forward_op = blend_op("cookbook_ops::mixup_forward");
    at::AutoDispatchBelowADInplaceOrView guard;
    Tensor out = forward_op.call(x, lam, index);
    // x only when lam is differentiated: d out_i / d lam_i = x_i - x_index[i].
    ctx->save_for_backward({lam, index, lam.requires_grad() ? x : Tensor()});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto backward_op = blend_op("cookbook_ops::mixup_backward");
    const auto saved = ctx->get_saved_variables();
    const Tensor& lam = saved[0];
    const Tensor& index = saved[1];
    const Tensor& grad_out = grads[0];
    Tensor grad_x, grad_lam;
    if (ctx->needs_input_grad(0)) {
      grad_x = backward_op.call(dense(grad_out), lam, index);
    }
    if (ctx->needs_input_grad(1)) {
      const Tensor& x = saved[2];
      const auto dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
      const Tensor diff = x.to(dtype) - x.index_select(0, index).to(dtype);
      grad_lam = x.dim() > 1 ? (diff * grad_out.to(dtype)).flatten(1).sum(1) : diff * grad_out;
    }
    return {grad_x, grad_lam, Tensor()};
  }
};

Tensor mixup_autograd(const Tensor& x, const Tensor& lam, const Tensor& index) {
  return Mixup::apply(x, lam, index);
}

}  // namespace
}  // namespace cookbook_ops

TORCH_LIBRARY_IMPL(cookbook_ops, Autograd, m) {
  m.impl("mixup_forward", &cookbook_ops::mixup_autograd);
}
