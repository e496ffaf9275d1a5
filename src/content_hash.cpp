// The content hash of a Graph (content_hash.hpp): FNV-1a over what codegen reads.
#include "fxpack/content_hash.hpp"

#include <bit>
#include <cstring>
#include <span>
#include <string>

#include "fxpack/codegen.hpp"

namespace fxpack {
namespace {

// 64-bit FNV-1a, fed field by field in the order content_hash.hpp gives.
class ContentHasher {
 public:
  std::uint64_t digest() const { return h_; }

  void bytes(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t h = h_;
    for (std::size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
    h_ = h;
  }
  void byte(std::uint8_t b) { bytes(&b, 1); }
  void u64(std::uint64_t v) {
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(v >> (8 * i));
    bytes(le, 8);
  }
  void str(const std::string& s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }

  void value(const Value& v) {
    byte(static_cast<std::uint8_t>(v.kind()));
    switch (v.kind()) {
      case Value::Kind::None:
      case Value::Kind::Ellipsis: return;
      case Value::Kind::Bool: byte(v.to_bool() ? 1 : 0); return;
      case Value::Kind::Int: u64(static_cast<std::uint64_t>(v.to_int())); return;
      case Value::Kind::Double: u64(std::bit_cast<std::uint64_t>(v.to_double())); return;
      case Value::Kind::String: str(v.str()); return;
      case Value::Kind::DType: byte(static_cast<std::uint8_t>(v.dtype())); return;
      case Value::Kind::Device: {
        const Device& d = v.device();
        str(d.type);
        u64(static_cast<std::uint64_t>(d.index));
        return;
      }
      case Value::Kind::Layout: byte(static_cast<std::uint8_t>(std::get<Layout>(v.variant()))); return;
      case Value::Kind::MemoryFormat: byte(static_cast<std::uint8_t>(std::get<MemoryFormat>(v.variant()))); return;
      case Value::Kind::Slice: slice(v.slice()); return;
      case Value::Kind::Node: str(v.node()->name()); return;
      case Value::Kind::List:
      case Value::Kind::Tuple:
        u64(v.items().size());
        for (const Value& x : v.items()) value(x);
        return;
      case Value::Kind::Dict: dict(v.dict()); return;
      case Value::Kind::Tensor: tensor(v.tensor()); return;
    }
  }
  void dict(const Dict& d) {
    u64(d.items.size());
    for (const auto& [k, x] : d.items) {
      str(k);
      value(x);
    }
  }

 private:
  void slice(const Slice& s) {
    const std::optional<std::int64_t>* parts[] = {&s.start, &s.stop, &s.step};
    for (std::size_t k = 0; k < 3; ++k) {
      if (s.nodes[k]) {
        byte(2);
        str(s.nodes[k]->name());
      } else if (*parts[k]) {
        byte(1);
        u64(static_cast<std::uint64_t>(**parts[k]));
      } else {
        byte(0);
      }
    }
  }
  void tensor(const Tensor& t) {
    byte(t.defined() ? 1 : 0);
    if (!t.defined()) return;
    byte(static_cast<std::uint8_t>(t.dtype()));
    u64(t.shape().size());
    for (std::int64_t d : t.shape()) u64(static_cast<std::uint64_t>(d));
    const std::span<const std::byte> data = t.bytes();
    u64(data.size());
    bytes(data.data(), data.size());
  }

  std::uint64_t h_ = 1469598103934665603ull;
};

// What codegen reads of a call_function node's meta: `is_wrapped` True adds a wrap line.
bool wrapped(const Node& n) {
  if (n.op() != Op::CallFunction || n.meta().empty()) return false;
  const Value* w = n.meta().find("is_wrapped");
  return w && w->kind() == Value::Kind::Bool && w->to_bool();
}

}  // namespace

std::uint64_t content_hash(const Graph& graph) {
  ContentHasher h;
  h.u64(static_cast<std::uint64_t>(kCodegenVersion));
  h.byte(static_cast<std::uint8_t>(graph.dialect()));
  h.u64(graph.size());
  for (const Node* n : graph) {
    h.byte(static_cast<std::uint8_t>(n->op()));
    h.str(n->name());
    h.str(n->target());
    h.str(n->type());
    h.byte(wrapped(*n) ? 1 : 0);
    h.u64(n->args().size());
    for (const Value& a : n->args()) h.value(a);
    h.dict(n->kwargs());
  }
  return h.digest();
}

}  // namespace fxpack
