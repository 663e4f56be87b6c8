// The ranks of a tensor-parallel group as threads of one process: a model::Reducer per rank that
// adds up the ranks' buffers in rank order (so every rank gets bitwise the same sum, as the
// cluster's exchange does). For tests of the model code without a transport.
#pragma once

#include <barrier>
#include <cstdint>
#include <vector>

#include "model/tensor_split.h"

namespace herd::testing {

class ThreadGroup {
 public:
  explicit ThreadGroup(int n_ranks) : sync_(n_ranks), data_(n_ranks) {
    for (int r = 0; r < n_ranks; ++r) reducers_.emplace_back(*this, r);
  }
  model::Reducer& reducer(int rank) { return reducers_.at(rank); }

 private:
  class RankReducer final : public model::Reducer {
   public:
    RankReducer(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
    void all_reduce(float* data, std::int64_t n) override {
      group_.data_[rank_] = data;
      group_.sync_.arrive_and_wait();  // every rank's partial is in place
      sum_.assign(n, 0.0f);
      for (float* part : group_.data_) {
        for (std::int64_t i = 0; i < n; ++i) sum_[i] += part[i];
      }
      group_.sync_.arrive_and_wait();  // every rank has read every partial
      std::copy(sum_.begin(), sum_.end(), data);
    }

   private:
    ThreadGroup& group_;
    int rank_;
    std::vector<float> sum_;
  };

  std::barrier<> sync_;
  std::vector<float*> data_;
  std::vector<RankReducer> reducers_;
};

}  // namespace herd::testing
