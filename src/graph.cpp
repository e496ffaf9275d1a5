#include "fxpack/graph.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <new>
#include <optional>
#include <utility>

#include "node_lint.hpp"
#include "python_names.hpp"

namespace fxpack {

namespace {

bool is_ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The name fx derives from a target: the function's __name__ for call_function (the last
// dotted part; the op packet for torch.ops.ns.op.overload), else the target with dunder
// stripped.
std::string candidate_for(Op op, std::string_view target) {
  std::string_view base = target;
  if (op == Op::CallFunction) {
    constexpr std::string_view ops_prefix = "torch.ops.";
    if (target.starts_with(ops_prefix)) {
      // torch.ops.<ns>.<op>.<overload>: fx names the node after <op>.
      std::string_view rest = target.substr(ops_prefix.size());
      auto d1 = rest.find('.');
      if (d1 != std::string_view::npos) {
        rest = rest.substr(d1 + 1);
        base = rest.substr(0, rest.find('.'));
      }
    } else if (auto dot = target.rfind('.'); dot != std::string_view::npos) {
      base = target.substr(dot + 1);
    }
  } else if (base.size() > 4 && base.starts_with("__") && base.ends_with("__")) {
    base = base.substr(2, base.size() - 4);
  }
  return snake_case(base);
}

}  // namespace

std::string snake_case(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 4);
  bool prev_lower = false;
  for (char c : s) {
    bool upper = c >= 'A' && c <= 'Z';
    if (prev_lower && upper) out += '_';
    out += upper ? static_cast<char>(c - 'A' + 'a') : c;
    prev_lower = c >= 'a' && c <= 'z';
  }
  return out;
}

bool is_reserved_python_name(std::string_view name) { return detail::is_reserved_name(name); }

bool is_python_identifier(std::string_view s) {
  if (s.empty() || is_digit(s[0])) return false;
  return std::all_of(s.begin(), s.end(), is_ident_char);
}

namespace {
const std::string kNoName;  // the sentinel's
}  // namespace

Graph::Graph(Dialect dialect)
    : dialect_(dialect), root_(new Node(this, Op::Placeholder, {}, &kNoName)), insert_before_(root_.get()) {
  root_->prev_ = root_->next_ = root_.get();
}

Graph::~Graph() {
  Node* n = root_->next_;
  while (n != root_.get()) {
    prefetch_walk(n, 1);
    Node* next = n->next_;
    n->release_args();
    n->~Node();
    n = next;
  }
  // Newest first: the cache keeps what was given back last, and a loaded graph's first chunk
  // is its large reserved one (reserve()), the one the next load of that graph asks for.
  while (!chunks_.empty()) chunks_.pop_back();
}

void* Graph::allocate_node() {
  if (!free_nodes_.empty()) {
    Node* reused = free_nodes_.back();
    free_nodes_.pop_back();
    return reused;
  }
  if (chunk_left_ == 0) {
    // Chunks double (up to 4096 nodes) so that small graphs stay small and large ones take
    // few allocations; reserve() asks for one chunk of the expected size. A large chunk may
    // hold more than asked for (graph_chunk.hpp): its nodes fill it.
    chunks_.push_back(detail::allocate_graph_chunk(detail::GraphChunkUse::Nodes, next_chunk_nodes_ * sizeof(Node)));
    chunk_next_ = chunks_.back().get();
    chunk_left_ = chunks_.back().get_deleter().bytes() / sizeof(Node);
    next_chunk_nodes_ = std::min<std::size_t>(2 * next_chunk_nodes_, 4096);
  }
  void* p = chunk_next_;
  chunk_next_ += sizeof(Node);
  --chunk_left_;
  return p;
}

void Graph::release_node(Node* node) {
  node->release_args();
  node->~Node();
  free_nodes_.push_back(node);
}

const std::string* Graph::intern_target(std::string_view s) {
  const std::uint32_t i = strings_.intern(s);
  if (i >= is_target_.size()) is_target_.resize(i + 1);
  if (!is_target_[i]) {
    is_target_[i] = true;
    targets_ever_used_.push_back(&strings_[i]);
  }
  return &strings_[i];
}

std::string Graph::unique_name(std::string_view raw) { return names_.claim(raw, dialect_).name; }

Node* Graph::create_node(Op op, std::string target, std::vector<Value> args, Dict kwargs,
                         std::optional<std::string> name) {
  if (op == Op::Output && output_)
    throw GraphError("graph already has an output node; erase it before adding another");
  auto claimed = names_.claim(name ? *name : candidate_for(op, target), dialect_);
  void* place = allocate_node();
  Node* node = new (place) Node(this, op, std::move(claimed.name), intern_target(target));
  try {
    node->store_args(std::move(args));
    node->set_kwargs_only(std::move(kwargs));
    node->update_inputs();  // throws for foreign nodes before anything is linked
  } catch (...) {
    release_node(node);
    throw;
  }
  link_before(node, insert_before_);
  *claimed.node = node;
  if (op == Op::Output) output_ = node;
  return node;
}

Node* Graph::placeholder(const std::string& name) {
  return create_node(Op::Placeholder, name, {}, {}, name);
}
Node* Graph::get_attr(const std::string& qualified_name) {
  return create_node(Op::GetAttr, qualified_name);
}
Node* Graph::call_function(const std::string& target, std::vector<Value> args, Dict kwargs) {
  return create_node(Op::CallFunction, target, std::move(args), std::move(kwargs));
}
Node* Graph::call_method(const std::string& method, std::vector<Value> args, Dict kwargs) {
  return create_node(Op::CallMethod, method, std::move(args), std::move(kwargs));
}
Node* Graph::call_module(const std::string& module_path, std::vector<Value> args, Dict kwargs) {
  return create_node(Op::CallModule, module_path, std::move(args), std::move(kwargs));
}
Node* Graph::output(Value result) {
  return create_node(Op::Output, "output", {std::move(result)}, {}, std::string("output"));
}

void Graph::link_before(Node* node, Node* before) {
  node->prev_ = before->prev_;
  node->next_ = before;
  before->prev_->next_ = node;
  before->prev_ = node;
  ++size_;
  touch();
}

void Graph::unlink(Node* node) {
  node->prev_->next_ = node->next_;
  node->next_->prev_ = node->prev_;
  node->prev_ = node->next_ = nullptr;
  --size_;
  touch();
}

void Graph::reserve(std::size_t nodes) {
  // The next chunk holds them all (up to 2^16 nodes a chunk: a bad count costs little), and
  // the argument arena's next chunk two arguments a node (most nodes have one to three).
  if (nodes > chunk_left_) next_chunk_nodes_ = std::max(next_chunk_nodes_, std::min<std::size_t>(nodes, 1u << 16));
  arguments_.reserve(2 * nodes);
}

void Graph::erase_node(Node* node) {
  if (!node || node->graph() != this) throw GraphError("erase_node: the node is not in this graph");
  if (!node->users_.empty()) {
    std::string users;
    for (Node* u : node->users_) users += (users.empty() ? "" : ", ") + u->name();
    throw GraphError("erase_node: node '" + node->name() + "' still has " +
                     std::to_string(node->users_.size()) + " user(s): " + users);
  }
  if (insert_before_ == node) insert_before_ = node->next_;
  node->drop_inputs();
  names_.release(node->name(), node);  // the name stays taken
  if (node == output_) output_ = nullptr;
  unlink(node);
  release_node(node);
  ++erased_;
}

Graph::InsertPoint::InsertPoint(Graph& g, Node* before) : graph_(g), saved_(g.insert_before_) {
  g.insert_before_ = before;
}
Graph::InsertPoint::~InsertPoint() { graph_.insert_before_ = saved_; }

Graph::InsertPoint Graph::inserting_before(Node* node) {
  if (!node || node->graph() != this) throw GraphError("inserting_before: the node is not in this graph");
  return InsertPoint(*this, node);
}
Graph::InsertPoint Graph::inserting_after(Node* node) {
  if (!node || node->graph() != this) throw GraphError("inserting_after: the node is not in this graph");
  return InsertPoint(*this, node->next_);
}

void LastUses::check_current(const Graph& graph, std::string_view user) const {
  if (graph_ != &graph || structure_generation_ != graph.structure_generation())
    throw GraphError(std::string(user) + ": the LastUses given was made " +
                     (graph_ != &graph ? "for another graph" : "before the graph last changed") +
                     "; make it with graph.last_uses() after the last edit");
}

namespace {
// Where a graph's nodes live: each place of each of its chunks numbered 0, 1, ... across
// the chunks, so that analyses can keep a mark per node without a node's position (lint)
// or before knowing it (last_uses). A hash set of node addresses cost a main-memory miss
// per node and 32 MB at 10^6 nodes; a bit by place is 125 KB (lint), a byte 1 MB (last_uses:
// three states, and a byte store is cheaper than a bit's read-modify-write). Nodes never
// leave their place.
class NodePlaces {
 public:
  explicit NodePlaces(const std::vector<detail::GraphChunk>& chunks) {
    chunks_.reserve(chunks.size());
    for (const auto& c : chunks) {
      const std::size_t nodes = c.get_deleter().bytes() / sizeof(Node);
      chunks_.push_back({reinterpret_cast<std::uintptr_t>(c.get()), nodes * sizeof(Node), count_});
      count_ += nodes;
    }
    std::sort(chunks_.begin(), chunks_.end(), [](const Chunk& a, const Chunk& b) { return a.start < b.start; });
  }
  NodePlaces(const NodePlaces&) = delete;  // last_ points into chunks_
  NodePlaces& operator=(const NodePlaces&) = delete;
  std::size_t count() const { return count_; }
  // The place of `n`; none when `n` is no place of the chunks (another graph's node). An
  // address in a chunk is a place: nodes fill their chunks whole.
  std::optional<std::size_t> of(const Node* n) const {
    const auto a = reinterpret_cast<std::uintptr_t>(n);
    // A node's inputs are mostly in the chunk of the node found last: try it first.
    if (a - last_->start < last_->bytes) return last_->first + (a - last_->start) / sizeof(Node);
    auto it = std::upper_bound(chunks_.begin(), chunks_.end(), a,
                               [](std::uintptr_t x, const Chunk& c) { return x < c.start; });
    if (it == chunks_.begin()) return std::nullopt;
    --it;
    if (a - it->start >= it->bytes) return std::nullopt;
    last_ = &*it;
    return it->first + (a - it->start) / sizeof(Node);
  }

 private:
  struct Chunk {
    std::uintptr_t start;
    std::size_t bytes;  // of its places
    std::size_t first;  // the number of its first place
  };
  std::vector<Chunk> chunks_;  // ascending by address
  std::size_t count_ = 0;
  static constexpr Chunk kNone{0, 0, 0};  // holds no address
  mutable const Chunk* last_ = &kNone;   // the chunk found last
};
}  // namespace

LastUses Graph::last_uses() const {
  if (size_ > LastUses::kMaxNodes)
    throw GraphError("last_uses: the graph has " + std::to_string(size_) + " nodes, more than the " +
                     std::to_string(LastUses::kMaxNodes) + " a node's position field numbers");
  LastUses out;
  out.graph_ = this;
  out.structure_generation_ = structure_generation_;
  const auto count = static_cast<std::uint32_t>(size_);
  // One walk, back to front: the first use met of a value is its last, and each node's list
  // is written right before the lists of the nodes after it. Its position is known from the
  // back (size_), so the walk writes it too: a forward walk for the positions, as there was,
  // read and wrote every node once more (at 10^6 nodes, 120 MB that is not in cache). Its
  // inputs' positions are not written yet when a user is walked, so what was met, and what
  // was walked (a node at or after the user), are marked by place of the node.
  const NodePlaces places(chunks_);
  enum Mark : std::uint8_t { kUnmet, kMet, kWalked };
  std::vector<Mark> marks(places.count(), kUnmet);
  out.nodes_.resize(count);  // a value dies at most once
  out.begin_.resize(count + 1);
  std::size_t front = count;  // the lists written so far are nodes_[front, count)
  out.begin_[count] = count;
  std::uint32_t user = count;
  for (const Node* n = root_->prev(); n != root_.get(); n = n->prev()) {
    --user;
    prefetch_walk(n, -1);
    // Relaxed: another analysis of this graph running now writes the same bytes.
    n->position_[0].store(static_cast<std::uint8_t>(user), std::memory_order_relaxed);
    n->position_[1].store(static_cast<std::uint8_t>(user >> 8), std::memory_order_relaxed);
    n->position_[2].store(static_cast<std::uint8_t>(user >> 16), std::memory_order_relaxed);
    marks[*places.of(n)] = kWalked;  // the graph's own node: a place of its chunks
    const auto inputs = n->input_nodes();
    // Backwards over the inputs, so that the node's list comes out in reference order.
    for (auto it = inputs.rbegin(); it != inputs.rend(); ++it) {
      const std::optional<std::size_t> place = places.of(*it);
      if (!place || marks[*place] == kWalked)
        throw GraphError("last_uses: node '" + n->name() + "' uses '" + (*it)->name() +
                         "', which does not come before it (Graph::lint refuses such graphs)");
      if (marks[*place] == kMet) continue;
      marks[*place] = kMet;
      out.nodes_[--front] = *it;
    }
    out.begin_[user] = static_cast<std::uint32_t>(front);
  }
  // Values nothing uses (the output at least) die nowhere, so nodes_[0, front) stays unused:
  // begin_ indexes past it, and moving the lists down would be one more pass over them.
  return out;
}

const Node* Graph::find_node(std::string_view name) const { return names_.find(name); }

Node* Graph::find_node(std::string_view name) { return const_cast<Node*>(std::as_const(*this).find_node(name)); }


void detail::lint_node_arguments(const Node& n) {
  if (n.op() == Op::GetAttr && !n.args().empty())
    throw GraphError("lint: get_attr node '" + n.name() + "' has arguments");
  if (n.op() == Op::Placeholder && (n.args().size() > 1 || !n.input_nodes().empty() || !n.kwargs().items.empty()))
    throw GraphError("lint: placeholder node '" + n.name() + "' has arguments other than a default value");
  if (n.op() == Op::CallMethod && n.args().empty())
    throw GraphError("lint: call_method node '" + n.name() + "' has no receiver argument");
  if (n.target().empty()) throw GraphError("lint: node '" + n.name() + "' has an empty target");
}

void Graph::lint() const {
  const NodePlaces places(chunks_);
  std::vector<bool> passed(places.count());  // by place: the nodes before the current one
  std::size_t outputs = 0;
  for (const Node* n : *this) {
    if (n->graph() != this) throw GraphError("lint: node '" + n->name() + "' belongs to another graph");
    // Names need no check: each node's name was interned fresh when it was created
    // (create_node), so no two nodes share one.
    for (Node* in : n->inputs_) {
      if (const auto place = places.of(in); !place || !passed[*place]) {
        bool later = false;
        for (Node* m = n->next_; m != root_.get(); m = m->next_) later |= (m == in);
        throw GraphError("lint: node '" + n->name() + "' uses '" + in->name() + "', which " +
                         (later ? "comes later in the graph" : "is not in the graph (dangling reference)"));
      }
      if (!in->users_.contains(n))
        throw GraphError("lint: node '" + in->name() + "' does not list its user '" + n->name() + "'");
    }
    for (Node* u : n->users_)
      if (!u->inputs_.contains(n))
        throw GraphError("lint: node '" + n->name() + "' lists '" + u->name() +
                         "' as a user, but it does not use it");
    if (n->op_ == Op::Output) {
      ++outputs;
      if (n->next_ != root_.get())
        throw GraphError("lint: output node '" + n->name() + "' is not the last node");
    }
    detail::lint_node_arguments(*n);
    passed[*places.of(n)] = true;  // in this graph (checked above): a place of its chunks
  }
  if (outputs != 1)
    throw GraphError("lint: the graph has " + std::to_string(outputs) + " output nodes, expected 1");
}

namespace {
bool has_side_effects(const Node* n) {
  if (n->op() == Op::Placeholder || n->op() == Op::Output) return true;
  // In-place ops (relu_, add_ and their aten overloads) write into an input.
  std::string_view t = n->target();
  if (n->op() == Op::CallFunction && t.starts_with("torch.ops.")) {
    auto last = t.rfind('.');
    t = t.substr(0, last);
  }
  if (n->op() == Op::CallFunction || n->op() == Op::CallMethod) {
    auto dot = t.rfind('.');
    std::string_view op = dot == std::string_view::npos ? t : t.substr(dot + 1);
    return op.size() > 1 && op.back() == '_' && op[op.size() - 2] != '_';
  }
  return false;
}
}  // namespace

bool Graph::eliminate_dead_code() {
  bool changed = false;
  Node* n = root_->prev_;
  while (n != root_.get()) {
    Node* prev = n->prev_;
    if (n->users_.empty() && !has_side_effects(n)) {
      erase_node(n);
      changed = true;
    }
    n = prev;
  }
  return changed;
}

std::unordered_map<const Node*, Node*> Graph::copy_into(Graph& into) const {
  std::unordered_map<const Node*, Node*> mapping;
  for (const Node* n : *this) {
    std::vector<Value> args;
    args.reserve(n->args().size());
    auto copied = [&](const Node* old) { return Value(mapping.at(old)); };
    for (const Value& a : n->args()) args.push_back(map_nodes(a, copied));
    Dict kwargs;
    for (const auto& [k, v] : n->kwargs().items) kwargs.items.emplace_back(k, map_nodes(v, copied));
    Node* copy = into.create_node(n->op_, n->target(), std::move(args), std::move(kwargs), n->name());
    copy->type_ = n->type().empty() ? n->type_ : into.intern(n->type());  // already a type expression
    copy->meta_ = n->meta_;
    mapping.emplace(n, copy);
  }
  return mapping;
}

std::unique_ptr<Graph> Graph::clone() const {
  auto g = std::make_unique<Graph>(dialect_);
  copy_into(*g);
  return g;
}

std::string Graph::to_string() const {
  std::string args;
  for (const Node* n : *this)
    if (n->op_ == Op::Placeholder) args += (args.empty() ? "" : ", ") + n->target();
  std::string out = "graph(" + args + "):";
  for (const Node* n : *this) out += "\n    " + n->format_node();
  return out;
}

}  // namespace fxpack
