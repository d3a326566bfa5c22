// Argument checks shared by the CPU and CUDA registrations. The Python layer validates the
// public API first; these guard the raw-pointer kernels against direct torch.ops calls.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

namespace cookbook_ops {

// logits (N, C) with unit stride along C; target (N,) int64 on the same device;
// weight (C,) contiguous in the op-math dtype of logits when present.
inline void check_cross_entropy_args(const at::Tensor& logits, const at::Tensor& target,
                                     const std::optional<at::Tensor>& weight) {
  TORCH_CHECK(logits.dim() == 2, "logits must be (N, C), got ", logits.sizes());
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), "logits must be floating point, got ",
              logits.scalar_type());
  TORCH_CHECK(target.dim() == 1 && target.size(0) == logits.size(0),
              "target must be (N,) with N = ", logits.size(0), ", got ", target.sizes());
  TORCH_CHECK(target.scalar_type() == at::kLong, "target must be int64, got ",
              target.scalar_type());
  TORCH_CHECK(target.device() == logits.device(), "target is on ", target.device(),
              " but logits is on ", logits.device());
  if (weight.has_value()) {
    const auto& w = *weight;
    TORCH_CHECK(w.dim() == 1 && w.size(0) == logits.size(1),
                "weight must be (C,) with C = ", logits.size(1), ", got ", w.sizes());
    TORCH_CHECK(w.device() == logits.device(), "weight is on ", w.device(), " but logits is on ",
                logits.device());
    const auto opmath = logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    TORCH_CHECK(w.scalar_type() == opmath, "weight must be ", opmath, " for ", logits.scalar_type(),
                " logits, got ", w.scalar_type());
  }
}

// logits (N, C); target (N, C) class probabilities of the logits' dtype and device; weight as
// above.
inline void check_soft_target_args(const at::Tensor& logits, const at::Tensor& target,
                                   const std::optional<at::Tensor>& weight) {
  TORCH_CHECK(logits.dim() == 2, "logits must be (N, C), got ", logits.sizes());
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), "logits must be floating point, got ",
              logits.scalar_type());
  TORCH_CHECK(target.sizes() == logits.sizes(), "target must have the shape of logits ",
              logits.sizes(), ", got ", target.sizes());
  TORCH_CHECK(target.scalar_type() == logits.scalar_type(),
              "target must have the dtype of logits (", logits.scalar_type(), "), got ",
              target.scalar_type());
  TORCH_CHECK(target.device() == logits.device(), "target is on ", target.device(),
              " but logits is on ", logits.device());
  if (weight.has_value()) {
    const auto& w = *weight;
    TORCH_CHECK(w.dim() == 1 && w.size(0) == logits.size(1),
                "weight must be (C,) with C = ", logits.size(1), ", got ", w.sizes());
    TORCH_CHECK(w.device() == logits.device(), "weight is on ", w.device(), " but logits is on ",
                logits.device());
    const auto opmath = logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    TORCH_CHECK(w.scalar_type() == opmath, "weight must be ", opmath, " for ", logits.scalar_type(),
                " logits, got ", w.scalar_type());
  }
}

inline at::ScalarType opmath_scalar_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace cookbook_ops
