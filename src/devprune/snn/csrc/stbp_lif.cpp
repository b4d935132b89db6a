// The STBP LIF (hard reset to 0) over T as one pass over the neurons: forward, and the
// backward of the rectangular surrogate (devprune.snn.native documents the contract).
//
// Forward, per neuron and step, the very operations of devprune's per-step torch loop:
//   u_t = fma(r_{t-1}, decay, x_t)   ATen's add(x, r, alpha=decay) on FMA CPUs (checked at load)
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

namespace {

constexpr int64_t kBlock = 512;

template <typename scalar_t, bool kKeepCharged>
void run_block(const scalar_t* x, int64_t x_step, scalar_t* spikes, scalar_t* charged,
               int64_t steps, int64_t n, scalar_t decay, scalar_t threshold,
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
        const scalar_t u = std::fma(membrane[i], decay, x_t[i]);
        const scalar_t s = static_cast<scalar_t>(u > threshold);
        s_t[i] = s;
        if constexpr (kKeepCharged) c_t[i] = u;
        membrane[i] = u + (-u) * s;
      }
    }
  }
}

// x: [T, N] with contiguous rows (row stride may be 0: one input repeated over T).
// Returns spikes [T, N]; fills `charged` ([T, N], or an empty tensor for none).
torch::Tensor stbp_lif_forward(torch::Tensor x, double decay, double threshold,
                               torch::Tensor charged) {
  TORCH_CHECK(x.dim() == 2 && x.stride(1) == 1, "stbp_lif_forward: x must be [T, N] with contiguous rows");
  const int64_t steps = x.size(0), n = x.size(1);
  auto spikes = torch::empty({steps, n}, x.options());
  const bool keep = charged.numel() > 0;
  TORCH_CHECK(!keep || (charged.is_contiguous() && charged.sizes() == spikes.sizes() &&
                        charged.scalar_type() == x.scalar_type()),
              "stbp_lif_forward: charged must be a contiguous [T, N] tensor of x's dtype");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "stbp_lif_forward", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* sp = spikes.data_ptr<scalar_t>();
    scalar_t* cp = keep ? charged.data_ptr<scalar_t>() : nullptr;
    const int64_t x_step = x.stride(0);
    const auto d = static_cast<scalar_t>(decay);
    const auto th = static_cast<scalar_t>(threshold);
    at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
      if (keep) {
        run_block<scalar_t, true>(xp, x_step, sp, cp, steps, n, d, th, begin, end);
      } else {
        run_block<scalar_t, false>(xp, x_step, sp, cp, steps, n, d, th, begin, end);
      }
    });
  });
  return spikes;
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

// Gradient of the inputs x [T, N] given the spikes' gradient, the charged membranes and the
// spikes of stbp_lif_forward (all contiguous [T, N] of one dtype).
torch::Tensor stbp_lif_backward_rectangular(torch::Tensor grad_spikes, torch::Tensor charged,
                                            torch::Tensor spikes, double decay,
                                            double threshold, double half_width,
                                            bool detach_reset) {
  TORCH_CHECK(charged.dim() == 2 && grad_spikes.sizes() == charged.sizes() &&
                  spikes.sizes() == charged.sizes(),
              "stbp_lif_backward_rectangular: tensors must share one [T, N] shape");
  TORCH_CHECK(grad_spikes.is_contiguous() && charged.is_contiguous() && spikes.is_contiguous(),
              "stbp_lif_backward_rectangular: tensors must be contiguous");
  const int64_t steps = charged.size(0), n = charged.size(1);
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
  m.def("stbp_lif_forward", &stbp_lif_forward, "STBP LIF forward over T, hard reset to 0");
  m.def("stbp_lif_backward_rectangular", &stbp_lif_backward_rectangular,
        "STBP LIF backward over T, hard reset to 0, rectangular surrogate");
}
