// Value: the one dynamic type that flows through graphs, kernels and forward bodies.
//
// A Value is what a Python object is to torch.fx: a node argument (a constant, a reference
// to another Node, a list/tuple/dict of those), a kernel argument or result (a Tensor, a
// scalar, a tuple of tensors), and the type of a forward body's inputs and outputs. The
// same forward body runs eagerly (its Values hold Tensors) and under symbolic_trace (its
// Values hold Node references — the role of fx's Proxy): every operation on a Value that
// involves a Node reference records a node instead of computing.
//
// Lists and tuples are distinct (fx prints `[a, b]` and `(a, b)`); dicts keep insertion
// order and have string keys; doubles may be inf or nan.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "fxpack/detail/boxed.hpp"
#include "fxpack/dtype.hpp"
#include "fxpack/tensor.hpp"

namespace fxpack {

class Node;
class Value;

namespace detail {
// The name of a Node, the one thing of a Node the value layer needs (python_repr prints a
// Value holding a Node as the node's name). Node belongs to the IR, a layer above this one:
// this layer declares what it needs, and value_ops.cpp, which sees node.hpp, defines it.
const std::string& node_name(const Node& n);
}  // namespace detail

struct None {
  friend bool operator==(None, None) { return true; }
};

// Python's Ellipsis (`x[..., 0]`; fx prints it as `Ellipsis`).
struct Ellipsis {
  friend bool operator==(Ellipsis, Ellipsis) { return true; }
};

// Python's slice(start, stop, step); each part may be None. In a graph a part may instead
// be a node whose value is an int when the graph runs (`x[slice(None, sub, None)]`): then
// `nodes[i]` holds it (0 start, 1 stop, 2 step) and the optional is unused. A plan resolves
// such slices to plain ones before any kernel sees them.
struct Slice {
  std::optional<std::int64_t> start, stop, step;
  std::array<Node*, 3> nodes{};
  bool has_nodes() const { return nodes[0] || nodes[1] || nodes[2]; }
  // Sets part i from a Value: None, an int (or bool), or a node.
  void set_part(int i, const Value& v);
  friend bool operator==(const Slice&, const Slice&) = default;
};

struct List {
  std::vector<Value> items;
  friend bool operator==(const List&, const List&);
};
struct Tuple {
  std::vector<Value> items;
  friend bool operator==(const Tuple&, const Tuple&);
};
struct Dict {
  std::vector<std::pair<std::string, Value>> items;  // insertion order
  friend bool operator==(const Dict&, const Dict&);
};

class Value {
 public:
  // The alternatives' order is part of the archive format: only append. Every alternative
  // larger than 8 bytes is boxed (detail/boxed.hpp) so that a Value is 16 bytes: a graph's
  // arguments are almost all node references and scalars, and at 40 bytes (a std::string
  // inline) they were a third of a large graph's memory. Read the boxed ones through
  // tensor()/if_tensor(), str()/if_string(), list()/if_list(), tuple()/if_tuple(),
  // dict()/if_dict(), items(), slice(), device().
  using Variant = std::variant<None, bool, std::int64_t, double, detail::Boxed<std::string>, DType,
                               detail::Boxed<Device>, Layout, MemoryFormat, detail::Boxed<Slice>,
                               Node*, detail::Boxed<List>, detail::Boxed<Tuple>, detail::Boxed<Dict>,
                               detail::Boxed<Tensor>, Ellipsis>;
  enum class Kind : std::uint8_t {
    None, Bool, Int, Double, String, DType, Device, Layout, MemoryFormat, Slice, Node, List,
    Tuple, Dict, Tensor, Ellipsis
  };

  Value() = default;
  Value(None) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(std::int64_t{i}) {}
  Value(std::int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  Value(const char* s) : v_(std::in_place_type<detail::Boxed<std::string>>, std::string(s)) {}
  Value(std::string s) : v_(std::in_place_type<detail::Boxed<std::string>>, std::move(s)) {}
  Value(DType d) : v_(d) {}
  Value(Device d) : v_(std::in_place_type<detail::Boxed<Device>>, std::move(d)) {}
  Value(Layout l) : v_(l) {}
  Value(MemoryFormat m) : v_(m) {}
  Value(Slice s) : v_(std::in_place_type<detail::Boxed<Slice>>, s) {}
  Value(Node* n) : v_(n) {}
  Value(List l) : v_(std::in_place_type<detail::Boxed<List>>, std::move(l)) {}
  Value(Tuple t) : v_(std::in_place_type<detail::Boxed<Tuple>>, std::move(t)) {}
  Value(Dict d) : v_(std::in_place_type<detail::Boxed<Dict>>, std::move(d)) {}
  Value(Tensor t) : v_(std::in_place_type<detail::Boxed<Tensor>>, std::move(t)) {}
  Value(Ellipsis e) : v_(e) {}

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  const Variant& variant() const { return v_; }
  Variant& variant() { return v_; }

  bool is_none() const { return kind() == Kind::None; }
  bool is_tensor() const { return kind() == Kind::Tensor; }
  bool is_node() const { return kind() == Kind::Node; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_double() const { return kind() == Kind::Double; }
  bool is_number() const { return is_int() || is_double(); }

  // Typed access; each throws OpError naming the expected and the actual kind.
  const Tensor& tensor() const;
  // The tensor, or nullptr when this is not one.
  const Tensor* if_tensor() const;
  Tensor* if_tensor();
  Node* node() const;
  bool to_bool() const;
  std::int64_t to_int() const;
  double to_double() const;  // accepts ints too
  const std::string& str() const;
  DType dtype() const;
  const std::vector<Value>& items() const;  // list or tuple
  const List& list() const;
  const Tuple& tuple() const;
  const Dict& dict() const;
  // The string, list, tuple or dict, or nullptr when this is not one (mutable: to edit the
  // items in place).
  const std::string* if_string() const;
  const List* if_list() const;
  List* if_list();
  const Tuple* if_tuple() const;
  Tuple* if_tuple();
  const Dict* if_dict() const;
  Dict* if_dict();
  const Slice& slice() const;
  const Device& device() const;
  // An int or a list/tuple of ints, as PyTorch's int[] arguments accept.
  std::vector<std::int64_t> int_list() const;

  // True if this value, or anything nested in it, is a Node reference.
  bool contains_node() const;

  // --- Tensor methods: run eagerly, or record call_method nodes while tracing. ---
  Value sin() const;
  Value cos() const;
  Value exp() const;
  Value tanh() const;
  Value sigmoid() const;
  Value relu() const;
  Value neg() const;
  Value abs() const;
  Value clamp(Value min, Value max = None{}) const;
  Value sum(Value dim = None{}, bool keepdim = false) const;
  Value mean(Value dim = None{}, bool keepdim = false) const;
  Value reshape(Value shape) const;
  Value view(Value shape) const;
  Value permute(Value dims) const;
  Value transpose(std::int64_t dim0, std::int64_t dim1) const;
  Value flatten(std::int64_t start_dim = 0, std::int64_t end_dim = -1) const;
  Value matmul(const Value& other) const;
  // x[i] (operator.getitem).
  Value operator[](const Value& index) const;
  // A call_method node or eager call for any method name.
  Value call_method(const std::string& name, std::vector<Value> args = {}, Dict kwargs = {}) const;

  friend bool operator==(const Value& a, const Value& b) { return a.v_ == b.v_; }

 private:
  Variant v_;
};
static_assert(sizeof(Value) == 16, "a Value is one 8-byte alternative and its index");

// The name of a kind ("Tensor", "int", ...) for error messages.
const char* kind_name(Value::Kind kind);

// operator.* — eager or traced.
Value operator+(const Value& a, const Value& b);
Value operator-(const Value& a, const Value& b);
Value operator*(const Value& a, const Value& b);
Value operator/(const Value& a, const Value& b);
Value operator-(const Value& a);

// fx's map_arg: a copy of `v` with every Node reference, however deeply nested in lists,
// tuples, dicts and slices, replaced by fn(node) (in a slice, fn must give None, an int or
// a node).
template <class Fn>
Value map_nodes(const Value& v, Fn&& fn) {
  switch (v.kind()) {
    case Value::Kind::Node: return fn(v.node());
    case Value::Kind::List: {
      List l;
      l.items.reserve(v.items().size());
      for (const Value& x : v.items()) l.items.push_back(map_nodes(x, fn));
      return l;
    }
    case Value::Kind::Tuple: {
      Tuple t;
      t.items.reserve(v.items().size());
      for (const Value& x : v.items()) t.items.push_back(map_nodes(x, fn));
      return t;
    }
    case Value::Kind::Dict: {
      Dict d;
      for (const auto& [k, x] : v.dict().items) d.items.emplace_back(k, map_nodes(x, fn));
      return d;
    }
    case Value::Kind::Slice: {
      const Slice& s = v.slice();
      if (!s.has_nodes()) return v;
      Slice out = s;
      for (int i = 0; i < 3; ++i) {
        if (Node* n = s.nodes[static_cast<std::size_t>(i)]) out.set_part(i, fn(n));
      }
      return out;
    }
    default: return v;
  }
}

// Python repr of a value as fx prints it in generated code: `3.0`, `1e-05`, `inf`,
// `'s'`, `(a,)`, `[1, 2]`, `{'k': v}`, `torch.float32`, `device(type='cpu')`, `Ellipsis`,
// node names.
std::string python_repr(const Value& v);
// Python repr of a float ("3.0", "1e-05", "inf", "nan", "-0.0").
std::string python_float_repr(double d);
// Python repr of a str with Python's quoting rules.
std::string python_str_repr(const std::string& s);

}  // namespace fxpack
