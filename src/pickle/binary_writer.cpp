#include "pickle/binary_writer.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <zlib.h>

#include "fxpack/codegen.hpp"
#include "fxpack/detail/pointer_index.hpp"
#include "fxpack/detail/serialize.hpp"

namespace fxpack::pickle::detail {

namespace {

// A growing byte buffer of its own (not a std::string, which clears what it grows into):
// a field is a store through a pointer, not a call.
class ByteBuffer {
 public:
  explicit ByteBuffer(std::size_t expect = 256)
      : data_(new char[std::max<std::size_t>(expect, 16)]),  // not cleared: every byte read is written first
        p_(data_.get()),
        end_(data_.get() + std::max<std::size_t>(expect, 16)) {}
  ByteBuffer(ByteBuffer&&) = default;
  ByteBuffer& operator=(ByteBuffer&&) = default;

  void room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) [[unlikely]] grow(n);
  }
  void byte(std::uint8_t b) {
    room(1);
    *p_++ = static_cast<char>(b);
  }
  // LEB128, as serialize.hpp's u64_field.
  void varint(std::uint64_t x) {
    room(10);
    while (x >= 0x80) {
      *p_++ = static_cast<char>(x | 0x80);
      x >>= 7;
    }
    *p_++ = static_cast<char>(x);
  }
  // Zig-zag, as i64_field.
  void signed_varint(std::int64_t v) {
    varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void raw(const void* data, std::size_t n) {
    room(n);
    if (n) std::memcpy(p_, data, n);
    p_ += n;
  }
  // Length + bytes, as bytes_field.
  void str(std::string_view s) {
    varint(s.size());
    raw(s.data(), s.size());
  }
  // 8 bytes in the machine's order, as both archives write a double and the hash.
  template <class T>
  void native8(T v) {
    static_assert(sizeof(T) == 8);
    raw(&v, 8);
  }
  std::string_view view() const { return {data_.get(), static_cast<std::size_t>(p_ - data_.get())}; }
  std::size_t capacity() const { return static_cast<std::size_t>(end_ - data_.get()); }
  // Empty again, keeping the memory.
  void reset() { p_ = data_.get(); }
  // Empty, giving the memory back (the next write allocates).
  void release() noexcept {
    data_.reset();
    p_ = end_ = nullptr;
  }

 private:
  [[gnu::noinline]] void grow(std::size_t n) {
    const std::size_t used = view().size();
    const std::size_t capacity = std::max(2 * static_cast<std::size_t>(end_ - data_.get()), used + n + 4096);
    std::unique_ptr<char[]> bigger(new char[capacity]);
    if (used) std::memcpy(bigger.get(), data_.get(), used);
    data_ = std::move(bigger);
    p_ = data_.get() + used;
    end_ = data_.get() + capacity;
  }

  std::unique_ptr<char[]> data_;
  char* p_;
  char* end_;
};

// The node bytes' buffer of this thread, kept between dumps when at most kKeptNodeBuffer, so
// that small graphs' dumps do not allocate. A larger one is given back when its dumps ends:
// kept, a 1M-node chain's 20 MB stayed alive through whatever the program did next (a load
// of the same graph peaked 20 MB higher), and giving it back costs no measurable time —
// glibc serves the next dumps' buffer from the heap it returned it to (its mmap threshold
// rises to the size of a freed mapping). A dumps run inside another (from its storage sink)
// writes into a buffer of its own.
constexpr std::size_t kKeptNodeBuffer = std::size_t{1} << 20;
class NodeBuffer {
 public:
  NodeBuffer() : buffer_(kept().in_use ? own_ : kept().buffer), lent_(!kept().in_use) {
    kept().in_use = true;
    buffer_.reset();
  }
  ~NodeBuffer() {
    if (!lent_) return;
    if (buffer_.capacity() > kKeptNodeBuffer) buffer_.release();  // a destructor: no allocation
    kept().in_use = false;
  }
  NodeBuffer(const NodeBuffer&) = delete;
  NodeBuffer& operator=(const NodeBuffer&) = delete;
  ByteBuffer& get() { return buffer_; }

 private:
  struct Kept {
    ByteBuffer buffer{4096};
    bool in_use = false;
  };
  static Kept& kept() {
    thread_local Kept k;
    return k;
  }
  ByteBuffer own_{4096};
  ByteBuffer& buffer_;
  bool lent_;
};

// The CRC-32 of nothing, where every sum starts.
std::uint32_t crc_start() { return static_cast<std::uint32_t>(crc32_z(0, nullptr, 0)); }
std::uint32_t crc_of(std::uint32_t crc, std::string_view bytes) {
  if (bytes.empty()) return crc;  // zlib answers 0 for a null pointer, whatever the length
  return static_cast<std::uint32_t>(crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}
// The CRC-32 of a part summed as `before`, followed by one of `size` bytes summed as `after`.
std::uint32_t crc_then(std::uint32_t before, std::uint32_t after, std::size_t size) {
  return static_cast<std::uint32_t>(crc32_combine64(before, after, static_cast<z_off64_t>(size)));
}

// `who` names the entry point in the message.
void check_binary(const DumpOptions& options, const char* who) {
  if (!is_binary_format(options.format))
    throw ValueError(std::string("pickle: ") + who + ": " + std::string(format_name(options.format)) +
                     " is not a binary format");
}

// Sums are taken a piece of this size at a time, while the piece is in cache: a pass of its
// own over a large archive afterwards read all of it from memory a second time (at 10^6
// nodes, 19 MB).
constexpr std::size_t kSumPiece = 64 * 1024;

// Appends `bytes` to `out` and folds them into `crc`, a piece at a time.
void append_summed(std::string& out, std::string_view bytes, std::uint32_t& crc) {
  for (std::size_t at = 0; at < bytes.size(); at += kSumPiece) {
    const std::string_view piece = bytes.substr(at, kSumPiece);
    out += piece;
    crc = crc_of(crc, piece);
  }
}

// What a BinaryWriter wrote: everything before the nodes in `prefix` but for the bytes of
// storages written inline (no storage sink), which stay in the storages' own memory; the
// nodes in a buffer of their own, with their CRC-32 when write<true> took it as it wrote
// them (else 0).
struct Written {
  ByteBuffer prefix;
  // Where in `prefix` each inline storage's bytes belong, in order.
  std::vector<std::pair<std::size_t, std::shared_ptr<Storage>>> inline_storages;
  std::uint32_t nodes_crc = 0;

  // The archive's pieces before the nodes, in order; none is empty.
  std::vector<std::string_view> pieces_before_nodes() const {
    std::vector<std::string_view> out;
    const std::string_view all = prefix.view();
    std::size_t from = 0;
    for (const auto& [at, storage] : inline_storages) {
      out.push_back(all.substr(from, at - from));  // ends with the storage's byte count
      if (storage->nbytes()) out.emplace_back(reinterpret_cast<const char*>(storage->data()), storage->nbytes());
      from = at;
    }
    out.push_back(all.substr(from));  // the tail: at least the node count
    return out;
  }
};

class BinaryWriter {
 public:
  BinaryWriter(const GraphModule& gm, const DumpOptions& options)
      : gm_(gm), graph_(gm.graph()), sink_(options.storage_sink) {}

  // Writes the archive's nodes into `nodes` (first: that fills the target and tensor
  // tables, which the archive holds before the nodes) and then the rest. kSumNodes: take
  // the nodes' CRC-32 as they are written (Written::nodes_crc), for a caller that will not
  // copy them (one that does sums them as it copies: combining two sums costs more than a
  // small graph's copy).
  template <bool kSumNodes>
  Written write(const DumpOptions& options, ByteBuffer& nodes) {
    Written w;
    nodes.room(24 * graph_.size() + 64);
    w.nodes_crc = nodes_with_lookahead<kSumNodes>(nodes);
    ByteBuffer root;
    in_module_ = true;
    module(gm_, "Module", root);
    ByteBuffer& b = w.prefix;
    if (options.format == PickleFormat::PortableBinary) {
      b.byte(std::endian::native == std::endian::little ? 1 : 0);  // cereal's endianness byte
    } else {
      const std::string& boost_header = boost_archive_header(PickleFormat::BoostBinary);
      b.raw(boost_header.data(), boost_header.size());
    }
    header(options.store_source_hash, b);
    b.varint(storages_.size());
    // StorageRecords: external flag, then the sink's key and the byte count, or the bytes.
    for (const StorageEntry& s : storages_) {
      b.varint(sink_ ? 1 : 0);
      if (sink_) b.str(s.key);
      b.varint(s.storage->nbytes());
      if (!sink_) w.inline_storages.emplace_back(b.view().size(), s.storage);
    }
    b.varint(tensor_count_);
    b.raw(tensor_bytes_.view().data(), tensor_bytes_.view().size());
    b.raw(root.view().data(), root.view().size());
    b.varint(targets_.size());
    for (std::string_view t : targets_) b.str(t);
    b.varint(graph_.size());
    report_call_targets(targets_, target_ops_, options.on_call_target);
    return w;
  }

 private:
  // Every node in program order. A large graph's nodes, argument lists and names are not in
  // cache, and the nodes are a linked list: the node kAhead places on, and what it points to,
  // are asked for while this one is written, so their memory arrives in parallel rather than
  // one miss after another.
  // kSum: returns the CRC-32 of what it wrote, summed a piece at a time as the pieces fill
  // (else 0).
  template <bool kSum>
  std::uint32_t nodes_with_lookahead(ByteBuffer& b) {
    static constexpr int kAhead = 8;
    Graph::const_iterator ahead = graph_.begin();
    const Graph::const_iterator end = graph_.end();
    for (int k = 0; k < kAhead && ahead != end; ++k) ++ahead;
    std::size_t summed = b.view().size();
    std::uint32_t crc = crc_start();
    for (Graph::const_iterator it = graph_.begin(); it != end; ++it) {
      if (ahead != end) {
        const Node* a = *ahead;
        __builtin_prefetch(a->next());
        __builtin_prefetch(a->args().data());
        __builtin_prefetch(&a->name());
        ++ahead;
      }
      node(*it, b);
      if (kSum && b.view().size() - summed >= kSumPiece) {
        crc = crc_of(crc, b.view().substr(summed));
        summed = b.view().size();
      }
    }
    return kSum ? crc_of(crc, b.view().substr(summed)) : 0;
  }

  // PickleRecord's fields before the storages.
  void header(bool store_hash, ByteBuffer& b) const {
    b.varint(kFormatVersion);
    b.str(gm_.class_name());
    b.signed_varint(kCodegenVersion);
    b.varint(static_cast<std::uint8_t>(graph_.dialect()));
    b.varint(store_hash ? 1 : 0);
    // format 3: the content hash, no source generated
    b.native8(store_hash ? gm_.content_hash() : std::uint64_t{0});
  }

  // NodeRecord: the op byte with its flags, name, target index, type, args, kwargs, meta.
  // Inlined into the node loop by force, as target_index is: with the loop instantiated
  // twice GCC stopped inlining them there, and a dumps took 6% more instructions.
  [[gnu::always_inline]] void node(const Node* n, ByteBuffer& b) {
    current_ = n;
    const Dict& kwargs = n->kwargs();
    const auto& meta = n->meta();
    const std::string_view type = n->type();
    const std::uint8_t op = static_cast<std::uint8_t>(static_cast<std::uint8_t>(n->op()) | (type.empty() ? 0 : 0x20) |
                                                      (kwargs.items.empty() ? 0 : 0x40) | (meta.empty() ? 0 : 0x80));
    b.varint(op);
    b.str(n->name());
    const std::uint64_t target = target_index(n->target());
    target_ops_[target] |= static_cast<std::uint8_t>(1u << static_cast<unsigned>(n->op()));
    b.varint(target);
    if (!type.empty()) b.str(type);
    const std::span<const Value> args = n->args();
    b.varint(args.size());
    for (const Value& a : args) value(a, b);
    if (!kwargs.items.empty()) dict(kwargs, b);
    if (!meta.empty()) dict(meta.entries(), b);
    recent_[cur_ % kRecent] = n;
    ++cur_;
  }

  // ValueRecord: the kind, then that kind's fields.
  void value(const Value& v, ByteBuffer& b) {
    const Value::Kind kind = v.kind();
    b.byte(static_cast<std::uint8_t>(kind));  // a kind is below 0x80: its varint is itself
    const auto& var = v.variant();
    switch (kind) {
      case Value::Kind::None: break;
      case Value::Kind::Bool: b.byte(std::get<bool>(var) ? 1 : 0); break;
      case Value::Kind::Int: b.signed_varint(std::get<std::int64_t>(var)); break;
      case Value::Kind::Double: b.native8(std::get<double>(var)); break;
      case Value::Kind::String: b.str(v.str()); break;
      case Value::Kind::DType: b.varint(static_cast<std::uint8_t>(std::get<DType>(var))); break;
      case Value::Kind::Device:
        b.str(v.device().type);
        b.signed_varint(v.device().index);
        break;
      case Value::Kind::Layout: b.signed_varint(static_cast<std::int64_t>(std::get<Layout>(var))); break;
      case Value::Kind::MemoryFormat: b.signed_varint(static_cast<std::int64_t>(std::get<MemoryFormat>(var))); break;
      case Value::Kind::Slice: slice(v.slice(), b); break;
      case Value::Kind::Node: b.signed_varint(node_back(std::get<Node*>(var))); break;
      case Value::Kind::List:
      case Value::Kind::Tuple: {
        const std::vector<Value>& items = v.items();
        b.varint(items.size());
        for (const Value& x : items) value(x, b);
        break;
      }
      case Value::Kind::Dict: dict(v.dict(), b); break;
      case Value::Kind::Tensor: b.signed_varint(static_cast<std::int64_t>(tensor(v.tensor()))); break;
      case Value::Kind::Ellipsis: break;
    }
  }

  // Start, stop, step: each a value record of a node, an int or none.
  void slice(const Slice& s, ByteBuffer& b) {
    const std::optional<std::int64_t>* parts[] = {&s.start, &s.stop, &s.step};
    for (std::size_t k = 0; k < 3; ++k) {
      if (s.nodes[k]) {
        b.byte(static_cast<std::uint8_t>(Value::Kind::Node));
        b.signed_varint(node_back(s.nodes[k]));
      } else if (*parts[k]) {
        b.byte(static_cast<std::uint8_t>(Value::Kind::Int));
        b.signed_varint(**parts[k]);
      } else {
        b.byte(static_cast<std::uint8_t>(Value::Kind::None));
      }
    }
  }

  void dict(const Dict& d, ByteBuffer& b) {
    b.varint(d.items.size());
    for (const auto& [k, x] : d.items) {
      b.str(k);
      value(x, b);
    }
  }

  // ModuleRecord: kind, attrs, parameters, buffers, children.
  void module(const Module& m, std::string_view kind, ByteBuffer& b) {
    b.str(kind);
    dict(m.attrs(), b);
    for (const auto* list : {&m.parameters(), &m.buffers()}) {
      b.varint(list->size());
      for (const auto& [name, t] : *list) {
        b.str(name);
        b.varint(tensor(t));
      }
    }
    b.varint(m.children().size());
    for (const auto& [name, c] : m.children()) {
      b.str(name);
      module(*c, c->kind(), b);
    }
  }

  // The index of `t` in the tensor table, which it joins now (TensorRecord: dtype, shape,
  // storage index or -1, byte offset); its storage joins the storage table on first use.
  std::uint64_t tensor(const Tensor& t) {
    ByteBuffer& b = tensor_bytes_;
    b.varint(static_cast<std::uint8_t>(t.dtype()));
    b.varint(t.shape().size());
    for (std::int64_t d : t.shape()) b.signed_varint(d);
    if (!t.defined()) {
      b.signed_varint(-1);
    } else {
      const Storage* s = t.storage().get();
      const auto [index, inserted] = storage_index_.try_emplace(s, storages_.size());
      if (inserted) storages_.push_back({t.storage(), sink_ ? sink_(t.storage()) : std::string()});
      b.signed_varint(static_cast<std::int64_t>(index));
    }
    b.varint(t.byte_offset());
    return tensor_count_++;
  }

  // A target's index in the table of distinct targets, by first use. Targets are interned
  // by the graph, so an address names one text: the last few addresses are compared first,
  // then all seen, and only a new address has its text hashed.
  [[gnu::always_inline]] std::uint64_t target_index(std::string_view target) {
    for (std::size_t k = 0; k < std::min(recent_targets_used_, recent_targets_.size()); ++k)
      if (recent_targets_[k].first == target.data()) return recent_targets_[k].second;
    std::uint64_t index = 0;
    if (const auto known = target_by_address_.find(target.data())) {
      index = *known;
    } else {
      const auto [it, inserted] = target_by_text_.try_emplace(target, targets_.size());
      if (inserted) {
        targets_.push_back(target);
        target_ops_.push_back(0);
      }
      index = it->second;
      target_by_address_.try_emplace(target.data(), index);
    }
    recent_targets_[recent_targets_used_++ % recent_targets_.size()] = {target.data(), index};
    return index;
  }

  // How many nodes back `n` is from the node being written (negative: a later node, which
  // only meta may name). References nearly always name one of the last few nodes: those are
  // found among the recent ones; a map of every node is built on the first reference further
  // back.
  std::int64_t node_back(const Node* n) {
    if (in_module_)
      throw GraphError("pickle: a module attribute holds a reference to node '" + (n ? n->name() : "<null>") +
                       "'; only node args, kwargs and meta may");
    for (std::uint64_t d = 1; d <= std::min<std::uint64_t>(cur_, kRecent); ++d)
      if (recent_[(cur_ - d) % kRecent] == n) return static_cast<std::int64_t>(d);
    if (node_index_.size() == 0) {
      node_index_.reserve(graph_.size());
      for (const Node* m : graph_) node_index_.try_emplace(m, node_index_.size());
    }
    const std::optional<std::uint64_t> index = node_index_.find(n);
    if (!index)
      throw GraphError("pickle: node '" + (current_ ? current_->name() : "") + "' references node '" +
                       (n ? n->name() : "<null>") + "', which is not in the graph being saved");
    return static_cast<std::int64_t>(cur_) - static_cast<std::int64_t>(*index);
  }

  struct StorageEntry {
    std::shared_ptr<Storage> storage;
    std::string key;  // the sink's key (DumpOptions::storage_sink)
  };

  const GraphModule& gm_;
  const Graph& graph_;
  const std::function<std::string(const std::shared_ptr<Storage>&)>& sink_;
  std::vector<StorageEntry> storages_;
  fxpack::detail::PointerIndex<Storage, std::uint64_t> storage_index_;
  ByteBuffer tensor_bytes_;  // the tensor table's records
  std::uint64_t tensor_count_ = 0;
  std::vector<std::string_view> targets_;  // views of the graph's interned targets
  std::vector<std::uint8_t> target_ops_;   // per target: the ops that used it (bit 1 << Op)
  std::unordered_map<std::string_view, std::uint64_t> target_by_text_;
  fxpack::detail::PointerIndex<char, std::uint64_t> target_by_address_;
  std::array<std::pair<const char*, std::uint64_t>, 8> recent_targets_{};
  std::size_t recent_targets_used_ = 0;
  static constexpr std::uint64_t kRecent = 16;
  std::array<const Node*, kRecent> recent_{};  // node i at i % kRecent
  fxpack::detail::PointerIndex<Node, std::uint64_t> node_index_;  // built when first needed
  const Node* current_ = nullptr;  // the node being written, for messages
  std::uint64_t cur_ = 0;          // its index (references are relative)
  bool in_module_ = false;
};

}  // namespace

std::uint32_t write_binary(const GraphModule& module, const DumpOptions& options, std::string& out) {
  check_binary(options, "write_binary");
  NodeBuffer lease;
  const Written w = BinaryWriter(module, options).write<false>(options, lease.get());
  const std::string_view nodes = lease.get().view();
  const std::vector<std::string_view> before = w.pieces_before_nodes();
  std::size_t size = nodes.size();
  for (std::string_view piece : before) size += piece.size();
  out.reserve(out.size() + size);
  std::uint32_t crc = crc_start();
  for (std::string_view piece : before) append_summed(out, piece, crc);
  append_summed(out, nodes, crc);
  return crc;
}

BinaryPieces write_binary_pieces(const GraphModule& module, const DumpOptions& options) {
  check_binary(options, "write_binary_pieces");
  struct Held {
    Written written;
    ByteBuffer nodes;
  };
  auto held = std::make_shared<Held>();
  held->written = BinaryWriter(module, options).write<true>(options, held->nodes);
  const std::string_view nodes = held->nodes.view();
  BinaryPieces out;
  out.pieces = held->written.pieces_before_nodes();
  out.crc = crc_start();
  for (std::string_view piece : out.pieces) out.crc = crc_of(out.crc, piece);
  out.crc = crc_then(out.crc, held->written.nodes_crc, nodes.size());
  if (!nodes.empty()) out.pieces.push_back(nodes);
  out.owner = std::move(held);
  return out;
}

}  // namespace fxpack::pickle::detail
