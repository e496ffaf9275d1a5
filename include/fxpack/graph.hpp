// Graph: an ordered list of Nodes, with fx's naming rules and editing operations.
//
// Nodes are owned by the graph and stay at a fixed address until erased, so Node* is a
// stable handle. They are placed in chunks the graph allocates (an erased node's place is
// reused), so building a graph does not allocate per node and walking it reads memory in
// order; names are kept by base and number (detail/name_table.hpp), so naming a node touches
// a small table of bases, not an index of every name. New nodes go at the current insertion
// point (the end, unless an `inserting_before`/`inserting_after` guard is alive). Their
// argument lists live in an arena of the graph's (detail/value_arena.hpp) in the same way.
// When a graph dies, its chunks of 64 KiB and more (a graph of about a thousand nodes and
// more has them) are not given back to the system but kept by the process for the next
// graph (detail/graph_chunk.hpp), so that reloading or retracing a large model reuses
// resident pages: up to 12 MiB stays allocated after large graphs die, until an inference
// plan's first call gives it back.
//
// Names follow torch.fx: the candidate is the snake_case of the target's last part (or the
// requested name), illegal characters become `_`, a leading digit gets a `_` prefix, and a
// clash with a used name, a Python keyword or builtin, or fx's reserved words takes a free
// `_N` suffix for that base, chosen as the graph's dialect does (dialect.hpp: 1.13 takes the
// smallest free N, 2.x counts on from the base's last N). Each base keeps its own counter, so
// naming costs O(1) per node rather than a search from 1. Suffixes are int64 numbers: a
// candidate whose suffix is above 2^63-1, or a clash whose next N would be, is a GraphError
// quoting the name (Python's ints have no bound; names fx makes never come near it).
//
// The dialect is a property of the graph: new graphs take default_dialect(); code() follows
// it. Changing it later changes how code prints and how later nodes are named, never the
// names already given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fxpack/detail/graph_chunk.hpp"
#include "fxpack/detail/name_table.hpp"
#include "fxpack/detail/pointer_index.hpp"
#include "fxpack/detail/string_pool.hpp"
#include "fxpack/detail/value_arena.hpp"
#include "fxpack/dialect.hpp"
#include "fxpack/node.hpp"

namespace fxpack {

// Where each value dies: for every node, in program order, the nodes whose last use it is,
// in the order it references them (first occurrence in args, then kwargs). This is the
// analysis torch.fx's codegen does for its `x = None` lines (delete_unused_values) and its
// Interpreter for freeing values; the output node is the last use of what it returns. A
// node nothing uses is nobody's last use. Built by Graph::last_uses(); describes the graph
// as it was then.
class LastUses {
 public:
  // The nodes whose last use is the node at `position` (0 = the first node).
  std::span<const Node* const> at(std::size_t position) const {
    return {nodes_.data() + begin_[position], nodes_.data() + begin_[position + 1]};
  }
  std::size_t size() const { return begin_.size() - 1; }
  // The position of a node of the graph (the numbering the analysis used), while the
  // analysis is current (check_current): the analysis writes it in the node, and a later
  // one of the graph after an edit renumbers.
  std::uint32_t position(const Node* n) const {
    return n->position_[0].load(std::memory_order_relaxed) |
           std::uint32_t{n->position_[1].load(std::memory_order_relaxed)} << 8 |
           std::uint32_t{n->position_[2].load(std::memory_order_relaxed)} << 16;
  }
  // The most nodes a graph may have for last_uses (positions are 24 bits in the node).
  static constexpr std::size_t kMaxNodes = std::size_t{1} << 24;
  // Throws GraphError (naming `user`) unless this analysis was made for `graph` as it is now:
  // the same graph, no node created, erased or edited since. A stale analysis holds
  // positions past the graph's end and pointers to erased nodes.
  void check_current(const Graph& graph, std::string_view user) const;

 private:
  friend class Graph;
  const Graph* graph_ = nullptr;  // the graph analysed, at its structure_generation() then
  std::uint64_t structure_generation_ = 0;
  std::vector<std::uint32_t> begin_{0};  // per position, where its list starts in nodes_
  std::vector<const Node*> nodes_;
};

class Graph {
 public:
  explicit Graph(Dialect dialect = default_dialect());
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  Dialect dialect() const { return dialect_; }
  void set_dialect(Dialect dialect) {
    dialect_ = dialect;
    touch();
  }

  // Changes whenever something code generation reads may have changed: a node created,
  // erased or edited (target, args, kwargs, type, meta), the dialect. A source generated from
  // the graph is current while this has the value it had then (GraphModule::content_hash
  // uses it to save without reading the graph again).
  std::uint64_t generation() const { return generation_; }
  // Changes with generation() except when only node meta changed (Meta::set, erase,
  // assignment). What reads no meta — a Plan and its inference program — is current while
  // this has the value it had then.
  std::uint64_t structure_generation() const { return structure_generation_; }

  // Room for `nodes` more nodes (the next chunk of nodes holds them), so that building a
  // large graph (a load) does not scatter it as it grows.
  void reserve(std::size_t nodes);

  // Node creation. `name` is a candidate: the final name may carry a suffix.
  Node* create_node(Op op, std::string target, std::vector<Value> args = {}, Dict kwargs = {},
                    std::optional<std::string> name = std::nullopt);
  Node* placeholder(const std::string& name);
  Node* get_attr(const std::string& qualified_name);
  Node* call_function(const std::string& target, std::vector<Value> args = {}, Dict kwargs = {});
  Node* call_method(const std::string& method, std::vector<Value> args = {}, Dict kwargs = {});
  Node* call_module(const std::string& module_path, std::vector<Value> args = {},
                    Dict kwargs = {});
  Node* output(Value result);

  // Removes a node; refuses (GraphError) a node that still has users.
  void erase_node(Node* node);

  // Insertion point guards (RAII): nodes created while alive go before/after `node`.
  class InsertPoint {
   public:
    ~InsertPoint();
    InsertPoint(const InsertPoint&) = delete;
    InsertPoint& operator=(const InsertPoint&) = delete;

   private:
    friend class Graph;
    InsertPoint(Graph& g, Node* before);
    Graph& graph_;
    Node* saved_;
  };
  [[nodiscard]] InsertPoint inserting_before(Node* node);
  [[nodiscard]] InsertPoint inserting_after(Node* node);

  // Checks invariants: every referenced node belongs to this graph and comes earlier, names
  // are unique, users lists agree with args, exactly one output node and it is last, a
  // placeholder has no argument but its default value (which references no node). Throws
  // GraphError naming the offending node.
  void lint() const;
  // Removes nodes without users that have no side effects (not placeholders or output).
  // Returns true if anything was removed.
  bool eliminate_dead_code();

  // Deep copy of nodes (names, targets, args, types, meta) into an empty graph `into`.
  // Returns the mapping old → new. clone() keeps the dialect too.
  std::unordered_map<const Node*, Node*> copy_into(Graph& into) const;
  std::unique_ptr<Graph> clone() const;

  // fx's `str(graph)`: `graph():` then one `%name : [#users=N] = op[target=t](args = ..., kwargs = ...)` line per node.
  std::string to_string() const;

  // Iteration in program order; a const graph hands out const nodes.
  template <class N>
  class basic_iterator {
   public:
    using iterator_category = std::bidirectional_iterator_tag;
    using value_type = N*;
    using difference_type = std::ptrdiff_t;
    using pointer = N* const*;
    using reference = N*;
    basic_iterator() = default;
    explicit basic_iterator(N* n) : n_(n) {}
    N* operator*() const { return n_; }
    basic_iterator& operator++() {
      prefetch_walk(n_, 1);
      n_ = n_->next();
      return *this;
    }
    basic_iterator operator++(int) { auto t = *this; ++*this; return t; }
    basic_iterator& operator--() {
      prefetch_walk(n_, -1);
      n_ = n_->prev();
      return *this;
    }
    basic_iterator operator--(int) { auto t = *this; --*this; return t; }
    friend bool operator==(basic_iterator a, basic_iterator b) { return a.n_ == b.n_; }
   private:
    N* n_ = nullptr;
  };
  using iterator = basic_iterator<Node>;
  using const_iterator = basic_iterator<const Node>;
  iterator begin() { return iterator(root_->next()); }
  iterator end() { return iterator(root_.get()); }
  const_iterator begin() const { return const_iterator(root_->next()); }
  const_iterator end() const { return const_iterator(root_.get()); }
  std::size_t size() const { return size_; }
  // How many nodes were erased from this graph so far: a node met before a count was taken is
  // still a node of the graph while the count stays the same (Tracer::take_attribute_nodes).
  std::uint64_t erased_count() const { return erased_; }
  // Every string that has been a node's target in this graph, each once, in the order first
  // used: the live nodes' targets, and those of nodes erased or retargeted since. O(1): a
  // binary pickle sizes its target table from it before it writes the nodes.
  std::span<const std::string* const> targets_ever_used() const { return targets_ever_used_; }
  // See LastUses: O(nodes + references). Writes each node's position in the node. A node
  // that uses one not before it (which lint refuses) is a GraphError naming both, and so is
  // a graph of more than LastUses::kMaxNodes nodes.
  LastUses last_uses() const;
  // Node by name, or nullptr.
  Node* find_node(std::string_view name);
  const Node* find_node(std::string_view name) const;
  // The output node, or nullptr. O(1).
  Node* output_node() { return output_; }
  const Node* output_node() const { return output_; }

  // A fresh unique name for `candidate` (used for names that are not nodes, too).
  std::string unique_name(std::string_view candidate);
  // Where the nodes' argument lists live, for memory accounting (tests, benchmarks).
  const detail::ValueArena& argument_arena() const { return arguments_; }

 private:
  friend class Node;
  friend class Meta;
  // Nodes made one after another sit one after another in the graph's node chunks, so a
  // walk asks for the node kWalkAhead places on, by address, while it is at this one: at
  // 10^6 nodes (120 MB, not in cache) the hardware prefetcher, which stops at every 4 KiB
  // page, left a miss per node. A hint only: that place may hold another node, or none.
  static constexpr std::ptrdiff_t kWalkAhead = 16;
  static void prefetch_walk(const Node* n, std::ptrdiff_t direction) {
    // Integer arithmetic: the address may lie outside any node, which a pointer must not.
    const std::uintptr_t ahead = reinterpret_cast<std::uintptr_t>(n) +
                                 static_cast<std::uintptr_t>(direction * kWalkAhead * std::ptrdiff_t{sizeof(Node)});
    __builtin_prefetch(reinterpret_cast<const void*>(ahead));
    // A node spans two or three lines; the third is a neighbour's first, which the walk's
    // step before or after this one asks for.
    __builtin_prefetch(reinterpret_cast<const void*>(ahead + 64));
  }

  void link_before(Node* node, Node* before);
  void unlink(Node* node);
  void touch() {
    ++generation_;
    ++structure_generation_;
  }
  void touch_meta() { ++generation_; }
  // The graph's one copy of a type string.
  const std::string* intern(std::string_view s) { return &strings_[strings_.intern(s)]; }
  // The graph's one copy of a target string, which joins targets_ever_used().
  const std::string* intern_target(std::string_view s);
  // Storage for a node not yet constructed; release_node destroys one and keeps its place.
  void* allocate_node();
  void release_node(Node* node);

  Dialect dialect_;
  std::unique_ptr<Node> root_;  // sentinel of the circular list
  Node* insert_before_;          // new nodes go right before this one
  Node* output_ = nullptr;       // the output node (a graph has at most one)
  std::size_t size_ = 0;
  std::uint64_t erased_ = 0;
  std::uint64_t generation_ = 0;
  std::uint64_t structure_generation_ = 0;
  // Every name ever handed out (names are never reused, as in fx) → its live node, or none
  // once erased or when it never named a node, and fx's counter per base.
  detail::NameTable names_;
  // Targets and types: a few distinct strings shared by many nodes.
  detail::StringPool strings_;
  std::vector<const std::string*> targets_ever_used_;
  std::vector<bool> is_target_;  // per pool string: in targets_ever_used_
  // Node storage: chunks of raw memory, the unused tail of the last one, and erased places.
  std::vector<detail::GraphChunk> chunks_;
  std::byte* chunk_next_ = nullptr;
  std::size_t chunk_left_ = 0;  // nodes that still fit at chunk_next_
  std::size_t next_chunk_nodes_ = 8;
  std::vector<Node*> free_nodes_;
  // The nodes' argument lists (~Graph destroys every node's arguments in its body, before
  // any member goes).
  detail::ValueArena arguments_;
};

// fx's _snake_case: `camelCase` → `camel_case`.
std::string snake_case(std::string_view s);
// True for Python keywords, Python builtins and fx's reserved names (inf, nan, torch, ...).
bool is_reserved_python_name(std::string_view name);
// True if `s` is a valid Python identifier (ASCII rules).
bool is_python_identifier(std::string_view s);

}  // namespace fxpack
