#include "context.hpp"

#include <algorithm>

#include <omp.h>

#include "fxpack/errors.hpp"
#include "fxpack/threads.hpp"

namespace fxpack::ops::dnnl_backend {

const dnnl::engine& engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

int use_threads() {
  const int n = num_threads();
  if (omp_get_max_threads() != n) omp_set_num_threads(n);
  return n;
}

void fail(const char* op, const dnnl::error& e) {
  throw OpError(std::string(op) + ": oneDNN: " + e.what() + " (status " + std::to_string(e.status) + ")");
}

void execute(const dnnl::primitive& p, std::span<const dnnl_exec_arg_t> args, const char* op) {
  const dnnl_status_t st = dnnl_primitive_execute(p.get(), stream().get(), static_cast<int>(args.size()), args.data());
  if (st != dnnl_success) fail(op, dnnl::error(st, "could not execute a primitive"));
}

void execute(const dnnl::primitive& p, std::initializer_list<dnnl_exec_arg_t> args, const char* op) {
  execute(p, std::span<const dnnl_exec_arg_t>(args.begin(), args.size()), op);
}

Dims dims_of(const Shape& s) { return Dims(s.begin(), s.end()); }

memory::desc plain_md(const Dims& dims) {
  Dims strides(dims.size());
  memory::dim st = 1;
  for (std::size_t i = dims.size(); i-- > 0;) {
    strides[i] = st;
    st *= std::max<memory::dim>(dims[i], 1);
  }
  return memory::desc(dims, memory::data_type::f32, strides);
}

memory wrap(const memory::desc& md, const void* data) {
  return memory(md, engine(), const_cast<void*>(data));
}

memory wrap(const Tensor& t) {
  return wrap(plain_md(dims_of(t.shape())), t.data<std::byte>());
}

bool worth_it(std::int64_t elements) { return elements >= 4096; }

}  // namespace fxpack::ops::dnnl_backend
