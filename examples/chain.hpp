// The benchmark model of PyTorch's anchor script (pytorch-anchors/bench.py): a chain of N
// ops cycling x.sin(), x.cos(), torch.relu(x), x + 1.0, x * 2.0.
#pragma once

#include "fxpack/fxpack.hpp"

namespace fxpack::examples {

class Chain : public Module {
 public:
  explicit Chain(int n) : Module("Chain"), n_(n) {}
  Value forward(std::span<const Value> in) override {
    Value x = in[0];
    for (int i = 0; i < n_; ++i) {
      switch (i % 5) {
        case 0: x = x.sin(); break;
        case 1: x = x.cos(); break;
        case 2: x = torch::relu(x); break;
        case 3: x = x + 1.0; break;
        case 4: x = x * 2.0; break;
      }
    }
    return x;
  }

 private:
  int n_;
};

}  // namespace fxpack::examples
