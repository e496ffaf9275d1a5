// Pickling: the header line, live objects <-> records, validation of untrusted records and
// the LazyGraphModule they become. The archive libraries are in pickle_cereal.cpp and
// pickle_boost.cpp.
#include "fxpack/pickle.hpp"
#include "fxpack/quote.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <istream>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <unordered_map>

#include <zlib.h>

#include "fxpack/codegen.hpp"
#include "fxpack/content_hash.hpp"
#include "fxpack/detail/serialize.hpp"
#include "fxpack/ops.hpp"
#include "node_lint.hpp"
#include "pickle/binary_writer.hpp"
#include "pickle/checked_record.hpp"

namespace fxpack::pickle {

void emit_warning(const std::function<void(const std::string&)>& hook, const std::string& message) {
  if (hook) hook(message);
  else std::cerr << "fxpack: warning: " << printable(message) << '\n';
}

namespace detail {

// ---------------------------------------------------------------------------------------
// Load context.
thread_local constinit LoadContext* t_load_context = nullptr;

LoadContext& default_load_context() {
  thread_local LoadContext context;
  return context;
}
ContextScope::ContextScope(LoadContext& ctx) : saved_(t_load_context) { t_load_context = &ctx; }
ContextScope::~ContextScope() { t_load_context = saved_; }

const char* xml_padded_name(const char* name) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::unique_ptr<char[]>> names;
  std::lock_guard lock(mu);
  auto& slot = names[name];
  if (!slot) {
    std::size_t n = std::strlen(name);
    if (n >= kXmlNamePad) throw FormatError("pickle: xml name too long");
    slot = std::make_unique<char[]>(kXmlNamePad);  // zero-filled
    std::memcpy(slot.get(), name, n);
  }
  return slot.get();
}

// ---------------------------------------------------------------------------------------
// base64 (RFC 4648, with padding).
namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(in[k]); };
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    std::uint32_t v = b(i) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    std::uint32_t v = (b(i) << 16) | (b(i + 1) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& in) {
  if (in.size() % 4 != 0) load_context().fail("base64 text length " + std::to_string(in.size()) + " is not a multiple of 4");
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int pad = 0;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      char c = in[i + k];
      int x;
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        ++pad;
        x = 0;
      } else {
        x = val(c);
        if (x < 0 || pad) load_context().fail("invalid base64 character at position " + std::to_string(i + k));
      }
      v = (v << 6) | static_cast<std::uint32_t>(x);
    }
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Live objects -> records.
namespace {

// The table of distinct node targets, each once, and the index of each target in it. A
// graph uses a few targets over and over: the last few found are compared first, before
// the hash map (whose hashing of every node's target was a tenth of a dump).
class TargetIndex {
 public:
  explicit TargetIndex(std::vector<std::string>& table) : table_(table) {}
  std::uint64_t index(const std::string& target) {
    for (std::size_t k = 0; k < std::min(next_, recent_.size()); ++k)
      if (recent_[k].first == target) return recent_[k].second;
    auto [it, inserted] = map_.try_emplace(target, table_.size());
    if (inserted) table_.push_back(target);
    recent_[next_++ % recent_.size()] = {it->first, it->second};
    return it->second;
  }

 private:
  std::vector<std::string>& table_;
  std::unordered_map<std::string_view, std::uint64_t> map_;  // views of the graph's targets
  std::array<std::pair<std::string_view, std::uint64_t>, 8> recent_{};
  std::size_t next_ = 0;
};

class Saver {
 public:
  // `targets_inline`: node records carry their target string (JSON), not only its index.
  Saver(PickleRecord& rec, const std::function<std::string(const std::shared_ptr<Storage>&)>& sink,
        bool targets_inline = true)
      : rec_(rec), sink_(sink), targets_inline_(targets_inline) {}

  std::uint64_t tensor(const Tensor& t) {
    TensorRecord tr;
    tr.dtype = static_cast<std::uint8_t>(t.dtype());
    tr.shape = t.shape().to_vector();
    tr.offset = t.byte_offset();
    if (!t.defined()) {
      tr.storage = -1;
    } else {
      const Storage* s = t.storage().get();
      auto [it, inserted] = storage_index_.try_emplace(s, rec_.storages.size());
      if (inserted) {
        StorageRecord sr;
        if (sink_) {
          sr.external = true;
          sr.key = sink_(t.storage());
          sr.nbytes = s->nbytes();
        } else {
          sr.bytes.assign(reinterpret_cast<const char*>(s->data()), s->nbytes());
        }
        rec_.storages.push_back(std::move(sr));
      }
      tr.storage = static_cast<std::int64_t>(it->second);
    }
    rec_.tensors.push_back(std::move(tr));
    return rec_.tensors.size() - 1;
  }

  ValueRecord value(const Value& v) {
    ValueRecord r;
    r.kind = static_cast<std::uint8_t>(v.kind());
    const auto& var = v.variant();
    switch (v.kind()) {
      case Value::Kind::None: break;
      case Value::Kind::Bool: r.i = std::get<bool>(var); break;
      case Value::Kind::Int: r.i = std::get<std::int64_t>(var); break;
      case Value::Kind::Double: r.d = std::get<double>(var); break;
      case Value::Kind::String: r.s = v.str(); break;
      case Value::Kind::DType: r.i = static_cast<std::int64_t>(std::get<DType>(var)); break;
      case Value::Kind::Device:
        r.s = v.device().type;
        r.i = v.device().index;
        break;
      case Value::Kind::Layout: r.i = static_cast<std::int64_t>(std::get<Layout>(var)); break;
      case Value::Kind::MemoryFormat: r.i = static_cast<std::int64_t>(std::get<MemoryFormat>(var)); break;
      case Value::Kind::Slice: {
        const Slice& s = v.slice();
        const std::optional<std::int64_t>* parts[] = {&s.start, &s.stop, &s.step};
        for (std::size_t k = 0; k < 3; ++k) {
          if (s.nodes[k]) {
            r.items.push_back(value(Value(s.nodes[k])));
            continue;
          }
          ValueRecord p;
          if (*parts[k]) {
            p.kind = static_cast<std::uint8_t>(Value::Kind::Int);
            p.i = **parts[k];
          }
          r.items.push_back(std::move(p));
        }
        break;
      }
      case Value::Kind::Node: {
        const Node* n = std::get<Node*>(var);
        if (in_module_) throw GraphError("pickle: a module attribute holds a reference to node '" +
                                    (n ? n->name() : "<null>") + "'; only node args, kwargs and meta may");
        const auto index = index_of(n);
        if (!index)
          throw GraphError("pickle: node '" + (current_ ? current_->name() : "") + "' references node '" + (n ? n->name() : "<null>") +
                      "', which is not in the graph being saved");
        r.i = static_cast<std::int64_t>(cur_) - static_cast<std::int64_t>(*index);
        break;
      }
      case Value::Kind::List:
        for (const Value& x : v.list().items) r.items.push_back(value(x));
        break;
      case Value::Kind::Tuple:
        for (const Value& x : v.tuple().items) r.items.push_back(value(x));
        break;
      case Value::Kind::Dict:
        for (const auto& [k, x] : v.dict().items) r.entries.push_back({k, value(x)});
        break;
      case Value::Kind::Tensor:
        // Node values: registered by index_graph, in this order. Module attributes: now.
        r.i = static_cast<std::int64_t>(in_module_ ? tensor(v.tensor()) : next_node_tensor_++);
        break;
      case Value::Kind::Ellipsis: break;
    }
    return r;
  }

  std::vector<NamedValue> dict(const Dict& d) {
    std::vector<NamedValue> out;
    out.reserve(d.items.size());
    for (const auto& [k, x] : d.items) out.push_back({k, value(x)});
    return out;
  }

  ModuleRecord module(const Module& m, const std::string& kind) {
    const bool outer = in_module_;
    in_module_ = true;
    ModuleRecord r;
    r.kind = kind;
    r.attrs = dict(m.attrs());
    for (const auto& [n, t] : m.parameters()) r.parameters.push_back({n, tensor(t)});
    for (const auto& [n, t] : m.buffers()) r.buffers.push_back({n, tensor(t)});
    for (const auto& [n, c] : m.children()) r.children.push_back({n, module(*c, c->kind())});
    in_module_ = outer;
    return r;
  }

  // Before anything is written: each node's index, the table of targets and the tensors
  // that node values hold, all of which the archive holds before the nodes.
  void index_graph(const Graph& g) {
    graph_ = &g;
    node_target_.reserve(g.size());
    TargetIndex targets(rec_.targets);
    for (const Node* n : g) {
      const std::uint64_t target = targets.index(n->target());
      node_target_.push_back(target);
      if (target == target_ops_.size()) {
        target_views_.push_back(n->target());
        target_ops_.push_back(0);
      }
      target_ops_[target] |= static_cast<std::uint8_t>(1u << static_cast<unsigned>(n->op()));
      for (const Value& a : n->args()) collect_tensors(a);
      for (const auto& [k, v] : n->kwargs().items) collect_tensors(v);
      for (const auto& [k, v] : n->meta().entries().items) collect_tensors(v);
    }
  }

  // DumpOptions::on_call_target, from the table index_graph made.
  void report_call_targets(const std::function<void(Op, std::string_view)>& hook) const {
    detail::report_call_targets(target_views_, target_ops_, hook);
  }

  // The record of the next node (after index_graph, in program order) into a fresh `nr`.
  void node(const Node* n, NodeRecord& nr) {
    current_ = n;
    nr.op = static_cast<std::uint8_t>(n->op());
    nr.name = n->name();
    if (targets_inline_) nr.target = n->target();
    nr.target_index = node_target_[cur_];
    nr.type = n->type();
    nr.args.reserve(n->args().size());
    for (const Value& a : n->args()) nr.args.push_back(value(a));
    if (!n->kwargs().items.empty()) nr.kwargs = dict(n->kwargs());
    if (!n->meta().empty()) nr.meta = dict(n->meta().entries());
    recent_[cur_ % kRecent] = n;
    ++cur_;
  }

 private:
  // The position of `n` in the graph being saved (none: another graph's node). References
  // nearly always name one of the last few nodes: those are found among the recent ones,
  // without a map of every node (a cache miss per lookup at 10^6 nodes); the map is built
  // on the first reference further back.
  std::optional<std::uint64_t> index_of(const Node* n) {
    for (std::uint64_t d = 1; d <= std::min<std::uint64_t>(cur_, kRecent); ++d)
      if (recent_[(cur_ - d) % kRecent] == n) return cur_ - d;
    if (node_index_.size() == 0) {
      node_index_.reserve(graph_->size());
      for (const Node* m : *graph_) node_index_.try_emplace(m, node_index_.size());
    }
    return node_index_.find(n);
  }

  // index_graph() registers the tensors of node values in the order value() meets them;
  // value() then refers to them in the same order.
  void collect_tensors(const Value& v) {
    switch (v.kind()) {
      case Value::Kind::Tensor: tensor(v.tensor()); ++node_tensors_; break;
      case Value::Kind::List:
      case Value::Kind::Tuple:
        for (const Value& x : v.items()) collect_tensors(x);
        break;
      case Value::Kind::Dict:
        for (const auto& [k, x] : v.dict().items) collect_tensors(x);
        break;
      default: break;
    }
  }

  PickleRecord& rec_;
  const std::function<std::string(const std::shared_ptr<Storage>&)>& sink_;
  bool targets_inline_;
  std::unordered_map<const Storage*, std::uint64_t> storage_index_;
  const Graph* graph_ = nullptr;  // the graph being saved (index_graph)
  static constexpr std::uint64_t kRecent = 16;
  std::array<const Node*, kRecent> recent_{};  // node i at i % kRecent, for index_of
  fxpack::detail::PointerIndex<Node, std::uint64_t> node_index_;  // built when first needed
  std::vector<std::uint64_t> node_target_;  // per node: its index in rec_.targets
  std::vector<std::string_view> target_views_;  // per target: the graph's own string
  std::vector<std::uint8_t> target_ops_;         // per target: the ops that used it (bit 1 << Op)
  std::uint64_t node_tensors_ = 0;          // tensors registered by index_graph (the first ones)
  std::uint64_t next_node_tensor_ = 0;      // the next of them value() meets
  const Node* current_ = nullptr;  // the node being saved, for messages
  std::uint64_t cur_ = 0;  // index of the node being saved (references are relative)
  bool in_module_ = false;
};

}  // namespace

namespace {
void set_header_fields(PickleRecord& rec, const GraphModule& gm, bool store_source_hash) {
  rec.format_version = kFormatVersion;
  rec.class_name = gm.class_name();
  rec.codegen_version = kCodegenVersion;
  rec.dialect = static_cast<std::uint8_t>(gm.graph().dialect());
  if (store_source_hash) {
    rec.has_source_hash = true;
    rec.source_hash = gm.content_hash();  // format 3: no source is generated to save
  }
}
}  // namespace

PickleRecord to_record(const GraphModule& gm, bool store_source_hash,
                       const std::function<std::string(const std::shared_ptr<Storage>&)>& storage_sink) {
  PickleRecord rec;
  set_header_fields(rec, gm, store_source_hash);
  Saver s(rec, storage_sink);
  s.index_graph(gm.graph());
  rec.root = s.module(gm, "Module");
  rec.nodes.resize(gm.graph().size());
  std::size_t i = 0;
  for (const Node* n : gm.graph()) s.node(n, rec.nodes[i++]);
  return rec;
}

void save_streaming(const GraphModule& gm, const DumpOptions& options, bool targets_inline,
                    const std::function<void(const PickleRecord&)>& write) {
  PickleRecord rec;
  set_header_fields(rec, gm, options.store_source_hash);
  Saver s(rec, options.storage_sink, targets_inline);
  s.index_graph(gm.graph());
  rec.root = s.module(gm, "Module");
  rec.node_count = gm.graph().size();
  Graph::const_iterator next = gm.graph().begin();
  rec.node_source = [&](std::uint64_t, NodeRecord& nr) { s.node(*next++, nr); };
  write(rec);
  s.report_call_targets(options.on_call_target);
}

// ---------------------------------------------------------------------------------------
// Records -> live objects, validating everything.
namespace {

[[noreturn]] void bad(const std::string& what) { throw FormatError("pickle: " + what); }

class Builder {
 public:
  Builder(PickleRecord& rec, const LoadOptions& opt, std::optional<std::uint32_t> expected_version = std::nullopt)
      : rec_(rec), opt_(opt), expected_version_(expected_version) {}

  void storages() {
    storages_.reserve(rec_.storages.size());
    for (std::size_t i = 0; i < rec_.storages.size(); ++i) {
      const StorageRecord& r = rec_.storages[i];
      if (r.external) {
        std::string where = "storages[" + std::to_string(i) + "] (external " + quote(r.key) + ")";
        if (!opt_.storage_source) bad(where + ": the pickle keeps this storage outside and no storage source was given");
        std::shared_ptr<Storage> s;
        try {
          s = opt_.storage_source(r.key, r.nbytes);
        } catch (const FormatError& e) {
          bad(where + ": " + e.what());
        } catch (const std::exception& e) {
          bad(where + ": " + e.what());
        }
        if (!s) bad(where + ": the storage source returned nothing");
        if (s->nbytes() != r.nbytes)
          bad(where + ": the storage source returned " + std::to_string(s->nbytes()) + " bytes, the pickle expects " +
              std::to_string(r.nbytes));
        storages_.push_back(std::move(s));
        continue;
      }
      const std::string& b = r.bytes;
      auto s = Storage::allocate(b.size());
      if (!b.empty()) std::memcpy(s->data(), b.data(), b.size());
      storages_.push_back(std::move(s));
      std::string().swap(rec_.storages[i].bytes);
    }
  }

  void tensors() {
    tensors_.reserve(rec_.tensors.size());
    for (std::size_t i = 0; i < rec_.tensors.size(); ++i) {
      const TensorRecord& t = rec_.tensors[i];
      std::string where = "tensors[" + std::to_string(i) + "]: ";
      if (t.dtype >= kDTypeCount) bad(where + "unknown dtype " + std::to_string(t.dtype));
      if (t.shape.size() > Shape::kMaxDims)
        bad(where + std::to_string(t.shape.size()) + " dimensions (at most " + std::to_string(Shape::kMaxDims) + ")");
      std::uint64_t numel = 1;
      for (std::int64_t d : t.shape) {
        if (d < 0) bad(where + "negative dimension " + std::to_string(d));
        if (d != 0 && numel > (std::uint64_t(1) << 62) / static_cast<std::uint64_t>(d))
          bad(where + "shape too large");
        numel *= static_cast<std::uint64_t>(d);
      }
      DType dt = static_cast<DType>(t.dtype);
      if (t.storage == -1) {
        tensors_.emplace_back();
        continue;
      }
      if (t.storage < 0 || static_cast<std::uint64_t>(t.storage) >= storages_.size())
        bad(where + "storage index " + std::to_string(t.storage) + " out of range (" +
            std::to_string(storages_.size()) + " storages)");
      const auto& s = storages_[static_cast<std::size_t>(t.storage)];
      std::uint64_t es = element_size(dt);
      if (numel > (std::uint64_t(1) << 62) / es) bad(where + "shape too large");
      std::uint64_t nbytes = numel * es;
      if (t.offset % es != 0) bad(where + "byte offset " + std::to_string(t.offset) + " is not a multiple of the element size");
      if (t.offset > s->nbytes() || nbytes > s->nbytes() - t.offset)
        bad(where + "dtype " + std::string(dtype_name(dt)) + " shape " + shape_str(t.shape) + " at byte offset " +
            std::to_string(t.offset) + " needs " + std::to_string(nbytes) + " bytes but storage " +
            std::to_string(t.storage) + " has " + std::to_string(s->nbytes()));
      tensors_.emplace_back(s, static_cast<std::size_t>(t.offset), dt, Shape(std::span<const std::int64_t>(t.shape)));
    }
  }

  static std::string shape_str(const std::vector<std::int64_t>& s) {
    std::string o = "[";
    for (std::size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
    return o + "]";
  }

  // Where a value sits, for messages: spelled out only when one is raised (a load builds
  // no text per value).
  using Where = std::function<std::string()>;

  // `node_limit`: node references must be < node_limit.
  Value value(const ValueRecord& r, std::size_t node_limit, const Where& where) const {
    switch (static_cast<Value::Kind>(r.kind)) {
      case Value::Kind::None: return None{};
      case Value::Kind::Bool: return r.i != 0;
      case Value::Kind::Int: return r.i;
      case Value::Kind::Double: return r.d;
      case Value::Kind::String: return r.s;
      case Value::Kind::DType:
        if (r.i < 0 || r.i >= kDTypeCount) bad(where() + ": unknown dtype " + std::to_string(r.i));
        return static_cast<DType>(r.i);
      case Value::Kind::Device: return Device{r.s, r.i};
      case Value::Kind::Layout:
        if (r.i != 0) bad(where() + ": unknown layout " + std::to_string(r.i));
        return Layout::Strided;
      case Value::Kind::MemoryFormat:
        if (r.i < 0 || r.i > 2) bad(where() + ": unknown memory format " + std::to_string(r.i));
        return static_cast<MemoryFormat>(r.i);
      case Value::Kind::Slice: {
        if (r.items.size() != 3) bad(where() + ": slice with " + std::to_string(r.items.size()) + " parts");
        Slice s;
        for (int k = 0; k < 3; ++k) {
          const ValueRecord& x = r.items[static_cast<std::size_t>(k)];
          const auto kind = static_cast<Value::Kind>(x.kind);
          if (kind != Value::Kind::Int && kind != Value::Kind::None && kind != Value::Kind::Node)
            bad(where() + ": slice part is " + kValueKindNames[x.kind] + ", not int, none or node");
          s.set_part(k, value(x, node_limit, where));
        }
        return s;
      }
      case Value::Kind::Node: {
        // stored as the distance back from the referencing node `node_limit`
        std::int64_t back = r.i;
        std::int64_t cur = static_cast<std::int64_t>(node_limit);
        bool ok = back > std::numeric_limits<std::int64_t>::min() / 2 && back < std::numeric_limits<std::int64_t>::max() / 2;
        std::int64_t ref = ok ? cur - back : -1;
        if (!ok || ref < 0 || ref >= static_cast<std::int64_t>(nodes_.size()) || (!in_meta_ && back < 1))
          bad(where() + ": node reference " + std::to_string(back) + " back from node " + std::to_string(cur) +
              (in_meta_ ? " is out of range (" + std::to_string(nodes_.size()) + " nodes)"
                        : " is not an earlier node"));
        return nodes_[static_cast<std::size_t>(ref)];
      }
      case Value::Kind::List: {
        List l;
        l.items.reserve(r.items.size());
        for (const auto& x : r.items) l.items.push_back(value(x, node_limit, where));
        return l;
      }
      case Value::Kind::Tuple: {
        Tuple t;
        t.items.reserve(r.items.size());
        for (const auto& x : r.items) t.items.push_back(value(x, node_limit, where));
        return t;
      }
      case Value::Kind::Dict: return dict(r.entries, node_limit, where);
      case Value::Kind::Ellipsis: return Ellipsis{};
      case Value::Kind::Tensor:
        if (r.i < 0 || static_cast<std::uint64_t>(r.i) >= tensors_.size())
          bad(where() + ": tensor reference " + std::to_string(r.i) + " out of range (" +
              std::to_string(tensors_.size()) + " tensors)");
        return tensors_[static_cast<std::size_t>(r.i)];
    }
    bad(where() + ": unknown value kind " + std::to_string(r.kind));
  }

  Dict dict(const std::vector<NamedValue>& entries, std::size_t node_limit, const Where& where) const {
    Dict d;
    d.items.reserve(entries.size());
    for (const auto& e : entries) d.items.emplace_back(e.key, value(e.value, node_limit, where));
    return d;
  }

  const Tensor& tensor_ref(std::uint64_t i, const std::string& where) const {
    if (i >= tensors_.size())
      bad(where + ": tensor reference " + std::to_string(i) + " out of range (" + std::to_string(tensors_.size()) + " tensors)");
    return tensors_[static_cast<std::size_t>(i)];
  }

  std::shared_ptr<Module> module(const ModuleRecord& r, const std::string& path, std::uint32_t depth) {
    if (depth > opt_.limits.max_nesting_depth) bad("module " + quote(path) + ": nesting depth exceeds the limit");
    in_meta_ = false;  // module attributes may not reference nodes
    // A stored kind name that is a registered kind makes a module of that kind (a leaf).
    const ModuleKind* kind = OpRegistry::global().module_kind(r.kind);
    auto m = kind ? std::make_shared<Module>(*kind) : std::make_shared<Module>(r.kind);
    std::string where = "module " + (path.empty() ? std::string("'<root>'") : quote(path)) + " (" + quote(r.kind) + ")";
    std::set<std::string> seen;
    auto unique = [&](const std::string& what, const std::string& name) {
      if (!seen.insert(what + ":" + name).second) bad(where + ": duplicate " + what + " " + quote(name));
    };
    try {
      for (const auto& a : r.attrs) {
        unique("attribute", a.key);
        m->set_attr(a.key, value(a.value, 0, [&] { return where + " attribute " + quote(a.key); }));
      }
      for (const auto& p : r.parameters) {
        unique("parameter", p.name);
        m->register_parameter(p.name, tensor_ref(p.tensor, where + " parameter " + quote(p.name)));
      }
      for (const auto& b : r.buffers) {
        unique("buffer", b.name);
        m->register_buffer(b.name, tensor_ref(b.tensor, where + " buffer " + quote(b.name)));
      }
      for (const auto& c : r.children) {
        unique("submodule", c.name);
        m->register_module(c.name, module(c.module, path.empty() ? c.name : path + "." + c.name, depth + 1));
      }
    } catch (const FormatError&) {
      throw;
    } catch (const Error& e) {
      bad(where + ": " + e.what());
    }
    if (!path.empty() && kind) {
      try {
        kind->validate(*m);
      } catch (const std::exception& e) {
        bad(where + " is not a valid " + r.kind + ": " + e.what());
      }
    }
    return m;
  }

  // The graph is built one node at a time, as the archive is read (PickleRecord::on_node)
  // or from a whole record: start() once storages, tensors and the header fields are in,
  // add_node() per node, finish_graph() at the end.
  void start() {
    if (expected_version_ && rec_.format_version != *expected_version_)
      throw FormatError("pickle: the archive says format version " + std::to_string(rec_.format_version) +
                        " but its header says " + std::to_string(*expected_version_));
    storages();
    tensors();
    if (rec_.dialect >= kDialectCount) bad("unknown codegen dialect " + std::to_string(rec_.dialect));
    graph_ = std::make_shared<Graph>(static_cast<Dialect>(rec_.dialect));
  }

  // `expected`: how many nodes the archive says there are (the name table is sized once).
  void add_node(NodeRecord& r, std::size_t i, std::size_t expected) {
    if (!graph_) start();
    if (i == 0) {  // `expected` was checked against the limits and the input left
      graph_->reserve(expected);
      nodes_.reserve(expected);
    }
    std::string where;
    auto at = [&]() -> const std::string& {
      if (where.empty()) where = "nodes[" + std::to_string(i) + "] " + quote(r.name);
      return where;
    };
    if (r.op > static_cast<std::uint8_t>(Op::Output)) bad(at() + ": unknown op " + std::to_string(r.op));
    if (rec_.targets_interned) {
      if (r.target_index >= rec_.targets.size())
        bad(at() + ": target index " + std::to_string(r.target_index) + " out of range (" +
            std::to_string(rec_.targets.size()) + " targets)");
      r.target = rec_.targets[static_cast<std::size_t>(r.target_index)];
    }
    Op op = static_cast<Op>(r.op);
    std::vector<Value> a;
    a.reserve(r.args.size());
    const Where args_at = [&] { return at() + " args"; };
    for (const auto& x : r.args) a.push_back(value(x, i, args_at));
    Dict kw;
    if (!r.kwargs.empty()) kw = dict(r.kwargs, i, [&] { return at() + " kwargs"; });
    Node* n;
    try {
      n = graph_->create_node(op, std::move(r.target), std::move(a), std::move(kw), r.name);
    } catch (const std::exception& e) {
      bad(at() + ": " + e.what());
    }
    if (n->name() != r.name)
      bad(at() + ": node name is not valid or not unique (the graph would call it " + quote(n->name()) + ")");
    if (!r.type.empty()) {  // most nodes have none: no parse, no graph generation bump
      try {
        n->set_type(std::move(r.type));
      } catch (const std::exception& e) {
        bad(at() + ": " + e.what());
      }
    }
    // lint's checks of the node by itself, now that it is in cache (node_lint.hpp: the rest
    // of lint holds by construction); the first failure is raised where lint ran before.
    if (!lint_error_) {
      try {
        fxpack::detail::lint_node_arguments(*n);
      } catch (const std::exception& e) {
        lint_error_ = e.what();
      }
    }
    nodes_.push_back(n);
    if (op == Op::GetAttr || op == Op::CallModule) attribute_nodes_.push_back(n);
    // Meta may reference later nodes: it is set once all nodes are in.
    if (!r.meta.empty()) pending_meta_.emplace_back(i, std::move(r.meta));
  }

  std::shared_ptr<Graph> finish_graph() {
    if (!graph_) start();
    in_meta_ = true;
    for (const auto& [index, meta] : pending_meta_) {
      const auto i = index;  // a lambda may not capture a structured binding before C++20's P1091 (clang 14)
      for (const auto& e : meta)
        nodes_[i]->meta().set(e.key, value(e.value, i, [&] {
          return "nodes[" + std::to_string(i) + "] " + quote(nodes_[i]->name()) + " meta " + quote(e.key);
        }));
    }
    pending_meta_.clear();
    if (nodes_.empty() || nodes_.back()->op() != Op::Output) bad("the graph's last node is not an output node");
    // Graph::lint's other checks hold by construction: value() lets args and kwargs refer only
    // to earlier nodes of this graph, create_node keeps users and inputs in step and refuses a
    // second output, and the output is last (above).
    if (lint_error_) bad("invalid graph: " + *lint_error_);
    return graph_;
  }

  // The get_attr and call_module nodes, in graph order: the GraphModule copies what they
  // name and finish() checks the called modules' kinds without walking a large graph again.
  const std::vector<const Node*>& attribute_nodes() const { return attribute_nodes_; }

 private:
  PickleRecord& rec_;
  const LoadOptions& opt_;
  std::optional<std::uint32_t> expected_version_;  // the header's, checked before any node is built
  std::shared_ptr<Graph> graph_;
  std::vector<std::pair<std::size_t, std::vector<NamedValue>>> pending_meta_;
  std::vector<std::shared_ptr<Storage>> storages_;
  std::vector<Tensor> tensors_;
  std::vector<Node*> nodes_;
  std::vector<const Node*> attribute_nodes_;
  std::optional<std::string> lint_error_;  // the first node that failed lint_node_arguments
  bool in_meta_ = false;
};

void warn(const LoadOptions& opt, LoadReport& report, const std::string& message) {
  report.warnings.push_back(message);
  emit_warning(opt.on_warning, message);
}

// What follows reading: the graph finished, the module tree, the checks of the result.
Loaded finish(Builder& b, const PickleRecord& rec, const LoadOptions& opt, PickleFormat format) {
  Loaded out;
  LoadReport& report = out.report;
  report.format = format;
  report.format_version = rec.format_version;
  report.stored_codegen_version = rec.codegen_version;
  report.has_source_hash = rec.has_source_hash;
  report.stored_source_hash = rec.source_hash;

  std::shared_ptr<Graph> graph = b.finish_graph();
  std::shared_ptr<Module> root = b.module(rec.root, "", 0);

  std::shared_ptr<GraphModule> gm;
  try {
    gm = make_graph_module(root, graph, {.class_name = rec.class_name, .graph_module_cls = GraphModuleClass::Lazy,
                                         .attribute_nodes = &b.attribute_nodes()});
    // The graph's copy took what its nodes name; bring the stored tree over completely
    // (members no node names, and parents with their stored kinds).
    for (const auto& [name, child] : root->children()) gm->register_module(name, child);
    for (const auto& [name, t] : root->parameters()) gm->register_parameter(name, t);
    for (const auto& [name, t] : root->buffers()) gm->register_buffer(name, t);
    for (const auto& [name, v] : root->attrs().items) gm->set_attr(name, v);
  } catch (const FormatError&) {
    throw;
  } catch (const std::exception& e) {
    bad(std::string("the graph does not match the module tree: ") + e.what());
  }

  // call_module targets whose kind nothing can run.
  std::set<std::string> unknown;
  for (const Node* n : b.attribute_nodes()) {
    if (n->op() != Op::CallModule) continue;
    auto m = gm->get_submodule(n->target());
    if (!m->leaf_kind()) unknown.insert(m->kind());
  }
  report.unregistered_module_kinds.assign(unknown.begin(), unknown.end());
  if (!unknown.empty()) {
    std::string list;
    for (const auto& k : unknown) list += (list.empty() ? "" : ", ") + quote(k);
    if (opt.refuse_unregistered_module_kinds) bad("unregistered module kinds: " + list);
    warn(opt, report, "pickle: loaded as data only, calling them will fail: unregistered module kinds: " + list);
  }

  if (rec.has_source_hash && opt.source_hash_check != SourceHashCheck::Off) {
    // Format 3 stores the graph's content hash, formats 1 and 2 the generated source's hash.
    const bool content = rec.format_version >= 3;
    const auto mismatch = [stored = rec.source_hash, version = rec.codegen_version, content](std::uint64_t now) {
      std::ostringstream msg;
      msg << "pickle: the " << (content ? "content hash of the loaded graph (" : "source rebuilt from the loaded graph (hash ")
          << std::hex << now << std::dec << ", codegen version " << kCodegenVersion << ") differs from the stored "
          << (content ? "content" : "source") << " hash " << std::hex << stored << std::dec << " (codegen version "
          << version << ")";
      return msg.str();
    };
    if (opt.source_hash_check == SourceHashCheck::AtLoad) {
      std::uint64_t now = content ? content_hash(*graph) : source_hash(python_code(*graph));
      report.rebuilt_source_hash = now;
      report.source_hash_matches = now == rec.source_hash;
      if (now != rec.source_hash) {
        if (opt.strict_source_hash) throw FormatError(mismatch(now));
        warn(opt, report, mismatch(now));
      }
    } else {
      // Compared when the first recompile generates the source anyway; a difference goes to
      // a copy of the loader's warning hook (LoadOptions::on_warning says it must stay
      // callable until then).
      // The check belongs to the module and dies with it: the raw pointer cannot dangle.
      gm->set_source_check([stored = rec.source_hash, strict = opt.strict_source_hash, mismatch, content,
                            hook = opt.on_warning, module = gm.get()](const std::string& src) {
        const std::uint64_t now = content ? content_hash(module->graph()) : source_hash(src);
        if (now == stored) return;
        if (strict) throw FormatError(mismatch(now));
        emit_warning(hook, mismatch(now));
      });
    }
  }
  out.module = std::move(gm);
  return out;
}

}  // namespace

Loaded from_record(PickleRecord rec, const LoadOptions& opt, PickleFormat format) {
  Builder b(rec, opt);
  for (std::size_t i = 0; i < rec.nodes.size(); ++i) b.add_node(rec.nodes[i], i, rec.nodes.size());
  return finish(b, rec, opt, format);
}

// loads(): the nodes go into the graph as they are read.
Loaded load_streaming(const std::function<void(PickleRecord&)>& read, std::uint32_t header_version,
                      const LoadOptions& opt, PickleFormat format) {
  PickleRecord rec;
  Builder b(rec, opt, header_version);
  rec.on_node = [&](NodeRecord& r, std::uint64_t i, std::uint64_t count) {
    b.add_node(r, static_cast<std::size_t>(i), static_cast<std::size_t>(count));
  };
  read(rec);
  return finish(b, rec, opt, format);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Header line and entry points.
namespace {

constexpr std::string_view kMagic = "fxpack.pickle ";
constexpr const char* kFormatNames[] = {"portable-binary", "json", "boost-text", "boost-binary", "boost-xml"};

bool is_boost(PickleFormat f) {
  return f == PickleFormat::BoostText || f == PickleFormat::BoostBinary || f == PickleFormat::BoostXml;
}

using Header = PickleHeader;

std::uint32_t body_crc32(std::string_view body) {
  return static_cast<std::uint32_t>(
      crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(body.data()), body.size()));
}

// The body's CRC-32 from the CRC-32 of the whole pickle (see pickle/checked_record.hpp).
std::uint32_t body_crc32_of_record(std::uint32_t record_crc32, std::string_view header, std::size_t body_size) {
  const uLong header_crc = crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(header.data()), header.size());
  return static_cast<std::uint32_t>(record_crc32 ^ crc32_combine64(header_crc, 0, static_cast<z_off64_t>(body_size)));
}

std::string hex32(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

Header parse_header(std::string_view bytes) {
  if (bytes.substr(0, kMagic.size()) != kMagic)
    throw FormatError("pickle: not an fxpack pickle: the input does not start with 'fxpack.pickle ' (at byte offset 0)");
  auto nl = bytes.substr(0, 64).find('\n');
  if (nl == std::string_view::npos)
    throw FormatError("pickle: header line not terminated within 64 bytes (at byte offset 0)");
  std::string_view line = bytes.substr(kMagic.size(), nl - kMagic.size());
  auto sp = line.find(' ');
  if (sp == std::string_view::npos)
    throw FormatError("pickle: header line has no version (at byte offset " + std::to_string(kMagic.size()) + ")");
  std::string_view name = line.substr(0, sp), ver = line.substr(sp + 1), sum;
  const std::size_t sum_offset = kMagic.size() + sp + 1 + ver.find(' ') + 1;
  if (auto sp2 = ver.find(' '); sp2 != std::string_view::npos) {
    sum = ver.substr(sp2 + 1);
    ver = ver.substr(0, sp2);
  }
  Header h{};
  bool found = false;
  for (int i = 0; i < kPickleFormatCount; ++i)
    if (name == kFormatNames[i]) {
      h.format = static_cast<PickleFormat>(i);
      found = true;
    }
  if (!found)
    throw FormatError("pickle: unknown pickle format " + quote(name, 64) + " in the header (at byte offset " +
                      std::to_string(kMagic.size()) + ")");
  if (ver.empty() || ver.size() > 9 || !std::all_of(ver.begin(), ver.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw FormatError("pickle: bad version " + quote(ver, 64) + " in the header (at byte offset " +
                      std::to_string(kMagic.size() + sp + 1) + ")");
  std::uint64_t v = std::stoull(std::string(ver));
  if (v > kFormatVersion)
    throw FormatError("pickle format version " + std::to_string(v) + " is newer than this build supports (" +
                      std::to_string(kFormatVersion) + ")");
  if (v == 0) throw FormatError("pickle: format version 0 in the header is invalid");
  h.version = static_cast<std::uint32_t>(v);
  // Format 1 has no checksum; from 2 on the header ends with the body's CRC-32 in hex.
  if (v == 1 && !sum.empty())
    throw FormatError("pickle: unexpected text after the version in a format 1 header (at byte offset " +
                      std::to_string(sum_offset) + ")");
  if (v >= 2) {
    if (sum.size() != 8 || !std::all_of(sum.begin(), sum.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        }))
      throw FormatError("pickle: the header of a format " + std::to_string(v) +
                        " pickle must end with the body's CRC-32 as 8 lowercase hex digits (at byte offset " +
                        std::to_string(sum.empty() ? nl : sum_offset) + ")");
    h.crc32 = static_cast<std::uint32_t>(std::stoul(std::string(sum), nullptr, 16));
  }
  h.size = nl + 1;
  return h;
}

std::string header_line(PickleFormat f, std::uint32_t body_crc) {
  return std::string(kMagic) + kFormatNames[static_cast<int>(f)] + " " + std::to_string(kFormatVersion) + " " +
         hex32(body_crc) + "\n";
}

// A streambuf appending to a std::string (avoids ostringstream's copy).
class StringSink : public std::streambuf {
 public:
  explicit StringSink(std::string& s) : s_(s) {}

 protected:
  std::streamsize xsputn(const char* p, std::streamsize n) override {
    if (n == 1) s_.push_back(*p);  // most fields of a binary archive are one byte
    else s_.append(p, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) s_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  std::string& s_;
};

void check_format(PickleFormat f) {
  if (static_cast<int>(f) >= kPickleFormatCount)
    throw ValueError("pickle: unknown PickleFormat " + std::to_string(static_cast<int>(f)));
}

// The archive after the header line, appended to `body`: the binary formats straight from
// the graph (binary_writer.hpp), the text formats as records through their library.
// Returns the CRC-32 of what it appended.
[[nodiscard]] std::uint32_t write_body(const GraphModule& m, const DumpOptions& o, std::string& body) {
  check_format(o.format);
  if (detail::is_binary_format(o.format)) return detail::write_binary(m, o, body);
  const std::size_t start = body.size();
  StringSink sink(body);
  std::ostream out(&sink);
  // The nodes are converted one at a time as the archive writes them.
  detail::save_streaming(m, o, o.format == PickleFormat::Json,
                         [&](const detail::PickleRecord& rec) {
    if (is_boost(o.format)) detail::write_boost(out, rec, o.format);
    else detail::write_cereal(out, rec, o.format);
  });
  if (!out) throw IoError("pickle: writing the pickle failed");
  return body_crc32(std::string_view(body).substr(start));
}

// Checks one JSON number, at body[start] ('-' or a digit), before rapidjson 1.1 parses it;
// returns the offset just past it. rapidjson's full-precision parser has
// undefined behaviour on numbers fxpack never writes (all found by fuzz_pickle_loads):
// - __builtin_clzll(0) when the significand it gathers is zero: a zero written with more
//   digits than a double has ("0.000...0", beyond 17) or with an exponent ("0e64": beyond
//   10^22 its fast path gives way); or significant digits that begin 18446744073709551615
//   (2^64 - 1) and go on with a digit of 5 or more (it rounds up and the uint64 wraps);
// - reads past its table of powers of ten (or overflows an int indexing it) when the
//   number's decimal exponent is far outside a double's range, which its own range check
//   misses when the digits and the exponent add up ("1" + 150 zeros + "e290", or 400
//   zeros after the point).
// fxpack writes zero as 0.0, at most 17 significant digits of a double or 20 of an integer,
// and doubles between 4.9e-324 and 1.8e308, so such a number is refused.
std::size_t check_json_number(std::string_view body, std::size_t start) {
  static constexpr std::string_view kWrapDigits = "18446744073709551615";
  static constexpr std::int64_t kMaxExponent = 1'000'000'000;  // saturates: no overflow on long exponents
  const auto digit = [&](std::size_t k) { return k < body.size() && body[k] >= '0' && body[k] <= '9'; };
  const auto refuse = [&](const std::string& what) {
    throw FormatError("pickle: JSON number at byte offset " + std::to_string(start) + " " + what +
                      ", which this build's JSON parser cannot read safely");
  };
  std::size_t digits = 0, matched = 0;
  bool zero = true, wraps = false;
  std::int64_t magnitude = 0;  // the power of ten just above the leading significant digit
  const auto take = [&](char d, bool fraction) {
    ++digits;
    zero = zero && d == '0';
    if (zero) {
      if (fraction) --magnitude;
      return;
    }
    if (!fraction) ++magnitude;
    if (matched < kWrapDigits.size()) {
      matched = d == kWrapDigits[matched] ? matched + 1 : kWrapDigits.size() + 1;
    } else if (matched == kWrapDigits.size()) {
      wraps = d >= '5';
      ++matched;
    }
  };
  // Reads exactly what rapidjson reads: '-', an integer part of one '0' or of digits, then
  // '.' and digits (a second '.' ends the number: "0.000.5" is the zero "0.000").
  std::size_t i = start + (body[start] == '-' ? 1 : 0);
  if (i < body.size() && body[i] == '0') take(body[i++], false);
  else while (digit(i)) take(body[i++], false);
  if (i < body.size() && body[i] == '.')
    for (++i; digit(i); ++i) take(body[i], true);
  const bool has_exponent = i < body.size() && (body[i] == 'e' || body[i] == 'E');
  if (zero && digits > 17) refuse("is a zero of " + std::to_string(digits) + " digits");
  if (zero && has_exponent) refuse("is a zero with an exponent");
  if (wraps) refuse("has the significant digits 18446744073709551615 followed by a digit of 5 or more");
  std::int64_t exponent = 0;
  if (has_exponent) {
    ++i;
    const bool negative = i < body.size() && body[i] == '-';
    if (i < body.size() && (body[i] == '-' || body[i] == '+')) ++i;
    for (; digit(i); ++i) exponent = std::min<std::int64_t>(exponent * 10 + (body[i] - '0'), kMaxExponent);
    if (exponent == kMaxExponent && !zero) refuse("has an exponent beyond 10^" + std::to_string(kMaxExponent));
    if (negative) exponent = -exponent;
  }
  if (!zero && (magnitude + exponent > 309 || magnitude + exponent < -323))
    refuse("is about 10^" + std::to_string(magnitude + exponent - 1) + ", outside the range of a double");
  return i;
}

// Checks the JSON text before rapidjson parses it: the nesting depth (rapidjson parses
// recursively) and every number (check_json_number).
void check_json_text(std::string_view body, const LoadLimits& lim) {
  std::uint64_t max = 4ull * lim.max_nesting_depth + 64;
  std::uint64_t depth = 0;
  bool in_str = false, esc = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max)
        throw FormatError("pickle: JSON nesting depth exceeds " + std::to_string(max) + " (at byte offset " +
                          std::to_string(i) + " of the archive)");
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      i = check_json_number(body, i) - 1;  // the loop's ++i moves past the number's last character
    }
  }
}

// See kXmlMaxTag: no element name in the input may be longer.
void check_xml_tags(std::string_view body) {
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '<') continue;
    std::size_t j = i + 1;
    if (j < body.size() && (body[j] == '/' || body[j] == '?' || body[j] == '!')) ++j;
    std::size_t start = j;
    while (j < body.size() && body[j] != '>' && body[j] != '/' && body[j] != ' ' && body[j] != '\t' &&
           body[j] != '\r' && body[j] != '\n' && j - start <= detail::kXmlMaxTag)
      ++j;
    if (j - start > detail::kXmlMaxTag)
      throw FormatError("pickle: xml element name longer than " + std::to_string(detail::kXmlMaxTag) +
                        " characters (at byte offset " + std::to_string(i) + " of the archive)");
  }
}

}  // namespace

std::string_view format_name(PickleFormat format) {
  int i = static_cast<int>(format);
  return i >= 0 && i < kPickleFormatCount ? kFormatNames[i] : "unknown";
}

PickleFormat detect_format(std::string_view bytes) { return parse_header(bytes).format; }
PickleHeader read_header(std::string_view bytes) { return parse_header(bytes); }

std::string dumps(const GraphModule& module, PickleFormat format) {
  return dumps(module, DumpOptions{.format = format});
}
std::string dumps(const GraphModule& module, const DumpOptions& options) {
  // The header line's length is fixed per format: its place is kept, the body written after
  // it and the line filled in last, so the body is never copied.
  check_format(options.format);
  const std::size_t header_size = header_line(options.format, 0).size();
  std::string out(header_size, '\n');
  const std::uint32_t crc = write_body(module, options, out);
  out.replace(0, header_size, header_line(options.format, crc));
  return out;
}
detail::PicklePieces detail::dumps_pieces(const GraphModule& module, const DumpOptions& options) {
  check_format(options.format);
  if (!detail::is_binary_format(options.format)) {
    auto bytes = std::make_shared<const std::string>(dumps(module, options));
    return {{std::string_view(*bytes)}, std::move(bytes)};
  }
  BinaryPieces body = write_binary_pieces(module, options);
  struct Held {
    std::string header;
    std::shared_ptr<const void> body;
  };
  auto held = std::make_shared<const Held>(Held{header_line(options.format, body.crc), std::move(body.owner)});
  PicklePieces out{{held->header}, held};
  out.pieces.insert(out.pieces.end(), body.pieces.begin(), body.pieces.end());
  return out;
}
void dump(const GraphModule& module, std::ostream& out, PickleFormat format) {
  dump(module, out, DumpOptions{.format = format});
}
void dump(const GraphModule& module, std::ostream& out, const DumpOptions& options) {
  std::string body;
  const std::uint32_t crc = write_body(module, options, body);
  out << header_line(options.format, crc) << body;
  if (!out) throw IoError("pickle: writing the pickle failed");
}

namespace {

// loads() with the CRC-32 of all of `bytes` when the caller has checked it (null: unknown).
Loaded loads_bytes(std::string_view bytes, std::optional<std::uint32_t> record_crc32, const LoadOptions& options) {
  Header h = parse_header(bytes);
  std::string_view body = bytes.substr(h.size);
  if (h.crc32) {
    const std::uint32_t actual =
        record_crc32 ? body_crc32_of_record(*record_crc32, bytes.substr(0, h.size), body.size()) : body_crc32(body);
    if (actual != *h.crc32)
      throw FormatError("pickle: the body's CRC-32 is " + hex32(actual) + " but the header says " + hex32(*h.crc32) +
                        ": the pickle is corrupt (" + std::to_string(body.size()) +
                        " bytes after the header line at byte offset " + std::to_string(h.size) + ")");
  }
  detail::LoadContext ctx;
  ctx.limits = options.limits;
  ctx.base_offset = h.size;
  detail::ContextScope scope(ctx);
  detail::MemBuf buf(body.data(), body.size());
  std::istream in(&buf);
  // Reads the archive; the nodes go into the graph as they come (detail::load_streaming).
  const auto read = [&](detail::PickleRecord& rec) {
    try {
      if (h.format == PickleFormat::Json) {
        check_json_text(body, options.limits);
        ctx.input = nullptr;  // parsed whole into a DOM first; sizes come from real arrays
        detail::read_cereal(in, rec, h.format);
      } else {
        ctx.input = &buf;
        if (is_boost(h.format)) {
          const std::string& expect = detail::boost_archive_header(h.format);
          if (body.substr(0, expect.size()) != expect)
            throw FormatError("pickle: the " + std::string(format_name(h.format)) +
                              " archive header does not match what this build's Boost.Serialization writes "
                              "(corrupt, or another Boost version or architecture) (at byte offset " +
                              std::to_string(h.size) + ")");
          if (h.format == PickleFormat::BoostXml) check_xml_tags(body);
          detail::read_boost(in, rec, h.format);
        } else {
          detail::read_cereal(in, rec, h.format);
        }
        if (detail::is_binary_format(h.format) && buf.remaining() != 0)
          ctx.fail(std::to_string(buf.remaining()) + " trailing bytes after the archive");
        if (h.format == PickleFormat::BoostText) {
          std::string_view rest = body.substr(body.size() - buf.remaining());
          if (rest.find_first_not_of(" \t\r\n") != std::string_view::npos)
            ctx.fail(std::to_string(rest.size()) + " trailing bytes after the archive");
        }
      }
    } catch (const FormatError&) {
      throw;
    } catch (const std::exception& e) {
      ctx.fail("corrupt or truncated " + std::string(format_name(h.format)) + " archive: " + e.what());
    } catch (...) {
      ctx.fail("corrupt or truncated " + std::string(format_name(h.format)) + " archive");
    }
  };
  try {
    return detail::load_streaming(read, h.version, options, h.format);
  } catch (const FormatError&) {
    throw;
  } catch (const std::exception& e) {
    throw FormatError(std::string("pickle: ") + e.what());
  }
}

}  // namespace

Loaded loads_with_report(std::string_view bytes, const LoadOptions& options) {
  return loads_bytes(bytes, std::nullopt, options);
}

Loaded detail::loads_checked_record(std::string_view bytes, std::uint32_t record_crc32, const LoadOptions& options) {
  return loads_bytes(bytes, record_crc32, options);
}

std::shared_ptr<GraphModule> loads(std::string_view bytes, const LoadOptions& options) {
  return loads_with_report(bytes, options).module;
}

Loaded load_with_report(std::istream& in, const LoadOptions& options, std::uint64_t max_bytes) {
  std::string data;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof buf);
    data.append(buf, static_cast<std::size_t>(in.gcount()));
    if (data.size() > max_bytes)
      throw FormatError("pickle: the input is larger than " + std::to_string(max_bytes) + " bytes");
  }
  if (in.bad()) throw FormatError("pickle: reading the input stream failed");
  return loads_with_report(data, options);
}

std::shared_ptr<GraphModule> load(std::istream& in, const LoadOptions& options, std::uint64_t max_bytes) {
  return load_with_report(in, options, max_bytes).module;
}

}  // namespace fxpack::pickle
