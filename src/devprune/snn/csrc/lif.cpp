// LIF neurons with a hard reset to 0 over T as one pass over the neurons: forward and
// backward of the STBP LIF (add charge) and the BrainCog LIF (lerp charge), the backward
// under the rectangular and QGate surrogates (devprune.snn.native documents the contract).
//
// Forward, per neuron and step, the very operations of devprune's per-step torch loop:
//   u_t = fma(r_{t-1}, decay, x_t)   ATen's add(x, r, alpha=decay) on FMA CPUs (checked at load)
//   or    fma(c, x_t - r_{t-1}, b)   ATen's vectorised lerp(r, x, w): (c, b) = (w, r) if
//                                    |w| < 0.5, else (w - 1, x_t)
//   s_t = u_t > threshold           (1 or 0)
//   r_t = u_t + (-u_t) * s_t         addcmul(u, u, s, value=-1): exact for s in {0, 1}
// Backward: the operations of devprune.snn.fused's backward in its order (backward_block).
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

// The charge kinds callers pass (devprune.snn.native.CHARGE_KINDS), and the forms the loop
// runs: STBP's add, and lerp with a weight below / from 0.5 (ATen's two forms).
enum ChargeKind { kAdd = 0, kLerp = 1 };
enum ChargeForm { kAddForm = 0, kLerpSmallWeight = 1, kLerpLargeWeight = 2 };

template <typename scalar_t, int kForm>
inline scalar_t charge(scalar_t membrane, scalar_t x, scalar_t factor) {
  if constexpr (kForm == kAddForm) return std::fma(membrane, factor, x);
  if constexpr (kForm == kLerpSmallWeight) return std::fma(factor, x - membrane, membrane);
  return std::fma(factor, x - membrane, x);  // factor = w - 1
}

template <typename scalar_t, bool kKeepCharged, int kForm>
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
        const scalar_t u = charge<scalar_t, kForm>(membrane[i], x_t[i], factor);
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
  TORCH_CHECK(x.dim() >= 1 && x.size(0) > 0, "lif: x must be [T, ...] with T >= 1");
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
    run_block<scalar_t, kKeepCharged, kAddForm>(x, x_step, spikes, charged, steps, n, factor,
                                                threshold, begin, end);
  } else if (std::abs(factor) < scalar_t(0.5)) {
    run_block<scalar_t, kKeepCharged, kLerpSmallWeight>(x, x_step, spikes, charged, steps, n,
                                                        factor, threshold, begin, end);
  } else {
    run_block<scalar_t, kKeepCharged, kLerpLargeWeight>(x, x_step, spikes, charged, steps, n,
                                                        factor - scalar_t(1), threshold, begin,
                                                        end);
  }
}

// Spikes shaped like x ([T, ...]) and, when keep_charged, the charged membranes. kind 0: the
// add charge (factor = decay), 1: lerp (factor = the weight).
std::vector<torch::Tensor> lif_forward(const torch::Tensor& x, int64_t kind, double factor,
                                       double threshold, bool keep_charged) {
  TORCH_CHECK(kind == kAdd || kind == kLerp, "lif_forward: kind must be 0 (add) or 1 (lerp)");
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

// The surrogates' gradients as devprune.snn.surrogate computes them (p1, p2 rounded from the
// doubles torch would round):
//   rectangular: (g * [|z| < half_width]) * (0.5 / half_width)      p1, p2 = half_width, 0.5/hw
//   qgate:       g * max(alpha - |z| * alpha^2, 0)                   p1, p2 = alpha, alpha^2
enum Surrogate { kRectangular = 0, kQGate = 1 };

template <typename scalar_t, int kSurrogate>
inline scalar_t surrogate(scalar_t grad, scalar_t z, scalar_t p1, scalar_t p2) {
  if constexpr (kSurrogate == kRectangular) {
    return (grad * static_cast<scalar_t>(std::abs(z) < p1)) * p2;
  }
  const scalar_t slope = p1 - std::abs(z) * p2;
  return grad * (slope < scalar_t(0) ? scalar_t(0) : slope);  // clamp_min(0), NaN kept
}

struct BackwardArgs {
  int64_t steps, n;
  double membrane_factor, input_factor, threshold, p1, p2;
};

// One block of neurons, step T-1 down to 0 (the order of devprune.snn.fused's backward):
//   g_r = g_u(t+1) * membrane_factor; g_s' = g_s - g_r * u_t (unless detach_reset);
//   g_u(t) = (g_r + (-g_r) * s_t) + surrogate(g_s', u_t - threshold);
//   g_x(t) = g_u(t), times input_factor for lerp
template <typename scalar_t, bool kDetachReset, bool kLerp, int kSurrogate>
void backward_block(const scalar_t* grad_spikes, const scalar_t* charged,
                    const scalar_t* spikes, scalar_t* grad_x, const BackwardArgs& a,
                    int64_t begin, int64_t end) {
  const auto membrane_factor = static_cast<scalar_t>(a.membrane_factor);
  const auto input_factor = static_cast<scalar_t>(a.input_factor);
  const auto threshold = static_cast<scalar_t>(a.threshold);
  const auto p1 = static_cast<scalar_t>(a.p1), p2 = static_cast<scalar_t>(a.p2);
  scalar_t grad_u[kBlock];
  const int64_t last = (a.steps - 1) * a.n;
  for (int64_t i = 0; i < end - begin; ++i) {
    const int64_t at = last + begin + i;
    const scalar_t g_u = surrogate<scalar_t, kSurrogate>(grad_spikes[at], charged[at] - threshold,
                                                         p1, p2);
    grad_u[i] = g_u;
    grad_x[at] = kLerp ? g_u * input_factor : g_u;
  }
  for (int64_t row = last - a.n; row >= 0; row -= a.n) {
    for (int64_t i = 0; i < end - begin; ++i) {
      const int64_t at = row + begin + i;
      const scalar_t u = charged[at];
      const scalar_t g_r = grad_u[i] * membrane_factor;
      scalar_t g_s = grad_spikes[at];
      if constexpr (!kDetachReset) {
        const scalar_t through_reset = g_r * u;
        g_s = g_s - through_reset;
      }
      const scalar_t kept = g_r + (-g_r) * spikes[at];
      const scalar_t g_u = kept + surrogate<scalar_t, kSurrogate>(g_s, u - threshold, p1, p2);
      grad_u[i] = g_u;
      grad_x[at] = kLerp ? g_u * input_factor : g_u;
    }
  }
}

template <typename scalar_t, bool kDetachReset, bool kLerp>
void backward_range(int64_t surrogate_kind, const scalar_t* g, const scalar_t* c,
                    const scalar_t* s, scalar_t* out, const BackwardArgs& a, int64_t begin,
                    int64_t end) {
  if (surrogate_kind == kRectangular) {
    backward_block<scalar_t, kDetachReset, kLerp, kRectangular>(g, c, s, out, a, begin, end);
  } else {
    backward_block<scalar_t, kDetachReset, kLerp, kQGate>(g, c, s, out, a, begin, end);
  }
}

// Gradient of the inputs x given the spikes' gradient and the charged membranes and spikes
// of lif_forward (one [T, ...] shape and dtype; the gradient may be strided). charge_kind as
// lif_forward's; surrogate_kind 0: rectangular, 1: qgate.
torch::Tensor lif_backward(const torch::Tensor& grad_output, const torch::Tensor& charged,
                           const torch::Tensor& spikes, int64_t charge_kind,
                           double membrane_factor, double input_factor, double threshold,
                           int64_t surrogate_kind, double p1, double p2, bool detach_reset) {
  TORCH_CHECK(charged.dim() >= 1 && grad_output.sizes() == charged.sizes() &&
                  spikes.sizes() == charged.sizes(),
              "lif_backward: tensors must share one [T, ...] shape");
  TORCH_CHECK(charged.is_contiguous() && spikes.is_contiguous(),
              "lif_backward: membranes and spikes must be contiguous");
  TORCH_CHECK(charge_kind == kAdd || charge_kind == kLerp,
              "lif_backward: charge_kind must be 0 (add) or 1 (lerp)");
  TORCH_CHECK(surrogate_kind == kRectangular || surrogate_kind == kQGate,
              "lif_backward: surrogate_kind must be 0 (rectangular) or 1 (qgate)");
  const torch::Tensor grad_spikes = grad_output.contiguous();
  const int64_t steps = charged.size(0), n = charged.numel() / steps;
  const BackwardArgs args{steps, n, membrane_factor, input_factor, threshold, p1, p2};
  const bool lerp = charge_kind == kLerp;
  auto grad_x = torch::empty_like(charged);
  AT_DISPATCH_FLOATING_TYPES(charged.scalar_type(), "lif_backward", [&] {
    const scalar_t* gp = grad_spikes.data_ptr<scalar_t>();
    const scalar_t* cp = charged.data_ptr<scalar_t>();
    const scalar_t* sp = spikes.data_ptr<scalar_t>();
    scalar_t* out = grad_x.data_ptr<scalar_t>();
    at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
      for (int64_t start = begin; start < end; start += kBlock) {
        const int64_t stop = std::min(start + kBlock, end);
        const int64_t k = surrogate_kind;
        if (detach_reset && lerp) {
          backward_range<scalar_t, true, true>(k, gp, cp, sp, out, args, start, stop);
        } else if (detach_reset) {
          backward_range<scalar_t, true, false>(k, gp, cp, sp, out, args, start, stop);
        } else if (lerp) {
          backward_range<scalar_t, false, true>(k, gp, cp, sp, out, args, start, stop);
        } else {
          backward_range<scalar_t, false, false>(k, gp, cp, sp, out, args, start, stop);
        }
      }
    });
  });
  return grad_x;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lif_forward", &lif_forward, "LIF forward over T (add or lerp charge), hard reset to 0");
  m.def("lif_backward", &lif_backward,
        "LIF backward over T (add or lerp charge, rectangular or qgate), hard reset to 0");
}
