// LIF neurons with a hard reset to 0 over T as one pass over the neurons: the forward of the
// STBP LIF (add charge) and the BrainCog LIF (lerp charge), and the STBP LIF's backward
// under the rectangular surrogate (devprune.snn.native documents the contract).
//
// Forward, per neuron and step, the very operations of devprune's per-step torch loop:
//   u_t = fma(r_{t-1}, decay, x_t)   ATen's add(x, r, alpha=decay) on FMA CPUs (checked at load)
//   or    fma(c, x_t - r_{t-1}, b)   ATen's vectorised lerp(r, x, w): (c, b) = (w, r) if
//                                    |w| < 0.5, else (w - 1, x_t)
//   s_t = u_t > threshold           (1 or 0)
//   r_t = u_t + (-u_t) * s_t         addcmul(u, u, s, value=-1): exact for s in {0, 1}
// Backward, step T-1 down to 0, the operations of devprune.snn.fused's backward in its order:
//   g_r = g_{t+1} * decay; g_s' = g_s - g_r * u_t (unless detach_reset);
//   g_z = (g_s' * [|u_t - threshold| < half_width]) * (0.5 / half_width);
//   g_t = (g_r + (-g_r) * s_t) + g_z
// Built with -ffp-contract=off, so only the explicit fma fuses. The torch loops read and
// write whole [N] tensors several times a step; here a block of neurons stays in cache over
// all T steps.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kBlock = 512;

// The charge kinds: STBP's add, and lerp with a weight below / from 0.5 (ATen's two forms).
enum Charge { kAdd = 0, kLerpSmall = 1, kLerpLarge = 2 };

template <typename scalar_t, int kCharge>
inline scalar_t charge(scalar_t membrane, scalar_t x, scalar_t factor) {
  if constexpr (kCharge == kAdd) return std::fma(membrane, factor, x);
  if constexpr (kCharge == kLerpSmall) return std::fma(factor, x - membrane, membrane);
  return std::fma(factor, x - membrane, x);  // factor = w - 1
}

template <typename scalar_t, bool kKeepCharged, int kCharge>
void run_block(const scalar_t* x, int64_t x_step, scalar_t* spikes, scalar_t* charged,
               int64_t steps, int64_t n, scalar_t factor, scalar_t threshold,
               int64_t begin, int64_t end) {
  scalar_t membrane[kBlock];
  for (int64_t start = begin; start < end; start += kBlock) {
    const int64_t count = std::min(kBlock, end - start);
    std::fill(membrane, membrane + count, scalar_t(0));
    for (int64_t t = 0; t < steps; ++t) {
      const scalar_t* x_t = x + t * x_step + start;
      scalar_t* s_t = spikes + t * n + start;
      scalar_t* c_t = kKeepCharged ? charged + t * n + start : nullptr;
      for (int64_t i = 0; i < count; ++i) {
        const scalar_t u = charge<scalar_t, kCharge>(membrane[i], x_t[i], factor);
        const scalar_t s = static_cast<scalar_t>(u > threshold);
        s_t[i] = s;
        if constexpr (kKeepCharged) c_t[i] = u;
        membrane[i] = u + (-u) * s;
      }
    }
  }
}

// x viewed as [T, N]: each step's block contiguous (a step stride of 0, one input repeated
// over T, is read in place); anything else is copied first.
torch::Tensor step_rows(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1 && x.size(0) > 0, "stbp_lif: x must be [T, ...] with T >= 1");
  const int64_t n = x.numel() / x.size(0);
  int64_t expected = 1;
  bool rows_contiguous = true;
  for (int64_t d = x.dim() - 1; d >= 1; --d) {
    if (x.size(d) != 1 && x.stride(d) != expected) rows_contiguous = false;
    expected *= x.size(d);
  }
  if (rows_contiguous) return x.as_strided({x.size(0), n}, {x.stride(0), 1});
  return x.contiguous().view({x.size(0), n});
}

template <typename scalar_t, bool kKeepCharged>
void run_range(int64_t kind, const scalar_t* x, int64_t x_step, scalar_t* spikes,
               scalar_t* charged, int64_t steps, int64_t n, scalar_t factor,
               scalar_t threshold, int64_t begin, int64_t end) {
  if (kind == kAdd) {
    run_block<scalar_t, kKeepCharged, kAdd>(x, x_step, spikes, charged, steps, n, factor,
                                            threshold, begin, end);
  } else if (std::abs(factor) < scalar_t(0.5)) {
    run_block<scalar_t, kKeepCharged, kLerpSmall>(x, x_step, spikes, charged, steps, n,
                                                  factor, threshold, begin, end);
  } else {
    run_block<scalar_t, kKeepCharged, kLerpLarge>(x, x_step, spikes, charged, steps, n,
                                                  factor - scalar_t(1), threshold, begin, end);
  }
}

// Spikes shaped like x ([T, ...]) and, when keep_charged, the charged membranes. kind 0: the
// add charge (factor = decay), 1: lerp (factor = the weight).
std::vector<torch::Tensor> lif_forward(const torch::Tensor& x, int64_t kind, double factor,
                                       double threshold, bool keep_charged) {
  TORCH_CHECK(kind == kAdd || kind == kLerpSmall, "lif_forward: kind must be 0 (add) or 1 (lerp)");
  const torch::Tensor rows = step_rows(x);
  const int64_t steps = rows.size(0), n = rows.size(1);
  auto options = x.options().memory_format(c10::MemoryFormat::Contiguous);
  auto spikes = torch::empty(x.sizes(), options);
  auto charged = keep_charged ? torch::empty(x.sizes(), options) : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_forward", [&] {
    const scalar_t* xp = rows.data_ptr<scalar_t>();
    scalar_t* sp = spikes.data_ptr<scalar_t>();
    scalar_t* cp = keep_charged ? charged.data_ptr<scalar_t>() : nullptr;
    const int64_t x_step = rows.stride(0);
    const auto f = static_cast<scalar_t>(factor);
    const auto th = static_cast<scalar_t>(threshold);
    at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
      if (keep_charged) {
        run_range<scalar_t, true>(kind, xp, x_step, sp, cp, steps, n, f, th, begin, end);
      } else {
        run_range<scalar_t, false>(kind, xp, x_step, sp, cp, steps, n, f, th, begin, end);
      }
    });
  });
  if (keep_charged) return {spikes, charged};
  return {spikes};
}

template <typename scalar_t>
scalar_t rectangular(scalar_t grad, scalar_t u, scalar_t threshold, scalar_t half_width,
                     scalar_t height) {
  return (grad * static_cast<scalar_t>(std::abs(u - threshold) < half_width)) * height;
}

template <typename scalar_t, bool kDetachReset>
void backward_block(const scalar_t* grad_spikes, const scalar_t* charged,
                    const scalar_t* spikes, scalar_t* grad_x, int64_t steps, int64_t n,
                    scalar_t decay, scalar_t threshold, scalar_t half_width, scalar_t height,
                    int64_t begin, int64_t end) {
  const int64_t last = (steps - 1) * n;
  for (int64_t i = begin; i < end; ++i) {
    grad_x[last + i] = rectangular(grad_spikes[last + i], charged[last + i], threshold,
                                   half_width, height);
  }
  for (int64_t row = last - n; row >= 0; row -= n) {
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t u = charged[row + i];
      const scalar_t g_r = grad_x[row + n + i] * decay;
      scalar_t g_s = grad_spikes[row + i];
      if constexpr (!kDetachReset) {
        const scalar_t through_reset = g_r * u;
        g_s = g_s - through_reset;
      }
      const scalar_t kept = g_r + (-g_r) * spikes[row + i];
      grad_x[row + i] = kept + rectangular(g_s, u, threshold, half_width, height);
    }
  }
}

// Gradient of the inputs x given the spikes' gradient and the charged membranes and spikes
// of lif_forward with the add charge (one [T, ...] shape and dtype; the gradient may be strided).
torch::Tensor stbp_lif_backward_rectangular(const torch::Tensor& grad_output,
                                            const torch::Tensor& charged,
                                            const torch::Tensor& spikes, double decay,
                                            double threshold, double half_width,
                                            bool detach_reset) {
  TORCH_CHECK(charged.dim() >= 1 && grad_output.sizes() == charged.sizes() &&
                  spikes.sizes() == charged.sizes(),
              "stbp_lif_backward_rectangular: tensors must share one [T, ...] shape");
  TORCH_CHECK(charged.is_contiguous() && spikes.is_contiguous(),
              "stbp_lif_backward_rectangular: membranes and spikes must be contiguous");
  const torch::Tensor grad_spikes = grad_output.contiguous();
  const int64_t steps = charged.size(0), n = charged.numel() / steps;
  auto grad_x = torch::empty_like(charged);
  AT_DISPATCH_FLOATING_TYPES(charged.scalar_type(), "stbp_lif_backward_rectangular", [&] {
    const scalar_t* gp = grad_spikes.data_ptr<scalar_t>();
    const scalar_t* cp = charged.data_ptr<scalar_t>();
    const scalar_t* sp = spikes.data_ptr<scalar_t>();
    scalar_t* out = grad_x.data_ptr<scalar_t>();
    const auto d = static_cast<scalar_t>(decay);
    const auto th = static_cast<scalar_t>(threshold);
    const auto hw = static_cast<scalar_t>(half_width);
    const auto height = static_cast<scalar_t>(0.5 / half_width);
    at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
      for (int64_t start = begin; start < end; start += kBlock) {
        const int64_t stop = std::min(start + kBlock, end);
        if (detach_reset) {
          backward_block<scalar_t, true>(gp, cp, sp, out, steps, n, d, th, hw, height, start, stop);
        } else {
          backward_block<scalar_t, false>(gp, cp, sp, out, steps, n, d, th, hw, height, start, stop);
        }
      }
    });
  });
  return grad_x;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lif_forward", &lif_forward, "LIF forward over T (add or lerp charge), hard reset to 0");
  m.def("stbp_lif_backward_rectangular", &stbp_lif_backward_rectangular,
        "STBP LIF backward over T, hard reset to 0, rectangular surrogate");
}
