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

// Copies `bytes` to `to` and folds them into `crc`, a piece at a time; returns the end.
char* copy_summed(char* to, std::string_view bytes, std::uint32_t& crc) {
  for (std::size_t at = 0; at < bytes.size(); at += kSumPiece) {
    const std::string_view piece = bytes.substr(at, kSumPiece);
    std::memcpy(to + at, piece.data(), piece.size());
    crc = crc_of(crc, piece);
  }
  return to + bytes.size();
}

// The CRC-32 of the first `summed` bytes a buffer holds.
struct PartSum {
  std::uint32_t crc = crc_start();
  std::size_t summed = 0;

  // The CRC-32 of a part summed as `before`, followed by all of `bytes` (the buffer's).
  std::uint32_t after(std::uint32_t before, std::string_view bytes) const {
    if (summed) before = crc_then(before, crc, summed);
    return crc_of(before, bytes.substr(summed));
  }
};

// A growing byte buffer: a field is a store through a pointer, not a call. Either memory of
// its own, or the tail of a std::string (the archive dumps returns), which it lengthens as
// it writes and trims with finish(). A summing buffer (the nodes') takes the CRC-32 of what
// it holds as it fills, kSumPiece at a time while in cache: its writable room ends at most
// kSumPiece on, and the sum is taken where the room is renewed, off the writing path.
class ByteBuffer {
 public:
  enum class Summing : bool { No, Yes };

  explicit ByteBuffer(std::size_t expect = 256, Summing summing = Summing::No)
      : data_(new char[std::max<std::size_t>(expect, 16)]),  // not cleared: every byte read is written first
        base_(data_.get()),
        p_(base_),
        capacity_end_(base_ + std::max<std::size_t>(expect, 16)),
        summing_(summing == Summing::Yes) {
    end_ = room_end(0);
  }
  // Appends to `s`, with room for `expect` bytes reserved; nothing else may change `s` until
  // finish(). It sums.
  ByteBuffer(std::string& s, std::size_t expect) : string_(&s), summing_(true) {
    s.reserve(s.size() + expect);
    base_ = p_ = end_ = capacity_end_ = s.data() + s.size();
  }
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
  // What was written (after the string's old end, for a string's tail).
  std::string_view view() const { return {base_, static_cast<std::size_t>(p_ - base_)}; }
  // A summing buffer's sum so far (PartSum::after sums the rest).
  const PartSum& sum() const { return sum_; }
  // A string's tail: the string ends where the writing ended.
  void finish() { string_->resize(static_cast<std::size_t>(p_ - string_->data())); }
  // Memory of its own, not summing: empty again, keeping the memory; its size; empty, giving
  // the memory back (the next write allocates).
  void reset() { p_ = base_; }
  std::size_t capacity() const { return static_cast<std::size_t>(capacity_end_ - base_); }
  void release() noexcept {
    data_.reset();
    base_ = p_ = end_ = capacity_end_ = nullptr;
  }

 private:
  // Where the writable room ends with `n` bytes wanted now.
  char* room_end(std::size_t n) const {
    const std::size_t piece = std::max(n, kSumPiece);
    if (!summing_ || static_cast<std::size_t>(capacity_end_ - p_) <= piece) return capacity_end_;
    return p_ + piece;
  }

  [[gnu::noinline]] void grow(std::size_t n) {
    const std::size_t used = view().size();
    if (summing_) {
      sum_.crc = crc_of(sum_.crc, view().substr(sum_.summed));
      sum_.summed = used;
    }
    if (string_) {
      // resize() clears what it adds: a piece at a time, written over while still in cache.
      const std::size_t at = static_cast<std::size_t>(p_ - string_->data());
      const std::size_t start = at - used;
      string_->resize(std::max(at + n, std::min(string_->capacity(), at + kSumPiece)));  // past the reserve: reallocates
      base_ = string_->data() + start;
      p_ = base_ + used;
      end_ = capacity_end_ = string_->data() + string_->size();
      return;
    }
    if (static_cast<std::size_t>(capacity_end_ - p_) < n) {
      const std::size_t capacity = std::max(2 * static_cast<std::size_t>(capacity_end_ - base_), used + n + 4096);
      std::unique_ptr<char[]> bigger(new char[capacity]);
      if (used) std::memcpy(bigger.get(), base_, used);
      data_ = std::move(bigger);
      base_ = data_.get();
      p_ = base_ + used;
      capacity_end_ = base_ + capacity;
    }
    end_ = room_end(n);
  }

  std::unique_ptr<char[]> data_;   // own memory, or null
  std::string* string_ = nullptr;  // or the string written into
  char* base_;
  char* p_;
  char* end_;  // of the room writes take without grow()
  char* capacity_end_;
  bool summing_;
  PartSum sum_;
};

// The node bytes' buffer of this thread, for nodes written before the tables and copied
// behind them (BinaryWriter::write_behind). Kept between dumps when at most kKeptNodeBuffer,
// so that small graphs' dumps do not allocate and write into memory warm in cache: writing
// a 10^3-node graph's nodes straight into the string dumps returns, fresh memory each time,
// was 3-5% slower. A larger one is given back when its dumps ends: kept, a 1M-node chain's
// 20 MB stayed alive through whatever the program did next. A dumps run inside another (from
// its storage sink) writes into a buffer of its own.
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

// `who` names the entry point in the message.
void check_binary(const DumpOptions& options, const char* who) {
  if (!is_binary_format(options.format))
    throw ValueError(std::string("pickle: ") + who + ": " + std::string(format_name(options.format)) +
                     " is not a binary format");
}

// The archive's bytes before its nodes (or before its target table, as write_in_place keeps
// that apart): `bytes`, but for those of storages written inline (no storage sink), which
// stay in the storages' own memory.
struct Tables {
  ByteBuffer bytes;
  // Where in `bytes` each inline storage's bytes belong, in order.
  std::vector<std::pair<std::size_t, std::shared_ptr<Storage>>> inline_storages;

  // All of it, in bytes.
  std::size_t size() const {
    std::size_t n = bytes.view().size();
    for (const auto& entry : inline_storages) n += entry.second->nbytes();
    return n;
  }
  // In order; none is empty.
  std::vector<std::string_view> pieces() const {
    std::vector<std::string_view> out;
    const std::string_view all = bytes.view();
    std::size_t from = 0;
    for (const auto& [at, storage] : inline_storages) {
      out.push_back(all.substr(from, at - from));  // ends with the storage's byte count
      if (storage->nbytes()) out.emplace_back(reinterpret_cast<const char*>(storage->data()), storage->nbytes());
      from = at;
    }
    out.push_back(all.substr(from));  // the tail: at least the root module's kind
    return out;
  }
};

// The archive is: the tables (storages, tensors, root module), the target table, the node
// count, the nodes. The nodes decide the tables' contents — targets and tensors join them in
// first-use order, node tensors before the module tree's — and are most of a large graph's
// bytes: they are written once, where they stay, and the rest is put in front of them.
class BinaryWriter {
 public:
  BinaryWriter(const GraphModule& gm, const DumpOptions& options)
      : gm_(gm), graph_(gm.graph()), format_(options.format), store_hash_(options.store_source_hash),
        sink_(options.storage_sink), on_call_target_(options.on_call_target) {}

  // The archive appended to `out` (dumps; an exception leaves part of it written). A large
  // graph's nodes are written straight into `out`, where they stay (write_in_place), unless
  // a storage sink is called (in the storages' first-use order, which the nodes decide) or
  // the tables are larger than the nodes (inline weights: a string that outgrew its reserve
  // would copy them whole). Returns the CRC-32 of what it appended.
  std::uint32_t write_into(std::string& out) {
    if (!sink_ && expected_nodes_size() > kKeptNodeBuffer) {
      const Tables front = write_tables();
      if (front.size() < expected_nodes_size()) return write_in_place(out, front);
    }
    return write_behind(out);
  }

  // The archive as pieces (a package's record): the nodes into a buffer of their own, then
  // the rest.
  BinaryPieces write_pieces() {
    struct Held {
      explicit Held(std::size_t expect) : nodes(expect, ByteBuffer::Summing::Yes) {}
      ByteBuffer nodes;
      Tables front;
    };
    auto held = std::make_shared<Held>(expected_nodes_size());
    const ByteBuffer& nodes = held->nodes;
    write_nodes(held->nodes);
    held->front = write_tables();
    target_table(held->front.bytes);
    BinaryPieces out;
    out.pieces = held->front.pieces();
    out.crc = crc_start();
    for (std::string_view piece : out.pieces) out.crc = crc_of(out.crc, piece);
    out.crc = nodes.sum().after(out.crc, nodes.view());
    if (!nodes.view().empty()) out.pieces.push_back(nodes.view());
    out.owner = std::move(held);
    report_call_targets(targets_, target_ops_, on_call_target_);
    return out;
  }

 private:
  // The nodes into the thread's NodeBuffer, then the tables, then both appended to `out`.
  std::uint32_t write_behind(std::string& out) {
    NodeBuffer lease;
    const ByteBuffer& nodes = lease.get();
    write_nodes(lease.get());
    Tables front = write_tables();
    target_table(front.bytes);
    const std::vector<std::string_view> pieces = front.pieces();
    out.reserve(out.size() + front.size() + nodes.view().size());
    std::uint32_t crc = crc_start();
    for (std::string_view piece : pieces) append_summed(out, piece, crc);
    append_summed(out, nodes.view(), crc);
    report_call_targets(targets_, target_ops_, on_call_target_);
    return crc;
  }

  // `front`, the tables as they are when no node holds a tensor, appended to `out`, then a
  // place for the target table sized from every target the graph has used
  // (Graph::targets_ever_used), then the nodes, straight into `out`: for a traced or loaded
  // graph they are where they stay. A target table of another size (a target no node uses
  // any more) moves them once, and so do node tensors, which change the tables.
  std::uint32_t write_in_place(std::string& out, const Tables& front) {
    const std::size_t start = out.size();
    const std::size_t kept = target_table_size();
    out.reserve(start + front.size() + kept + expected_nodes_size());
    std::uint32_t crc = crc_start();
    for (std::string_view piece : front.pieces()) append_summed(out, piece, crc);
    out.resize(out.size() + kept);
    ByteBuffer nodes(out, expected_nodes_size());
    write_nodes(nodes);
    const PartSum sum = nodes.sum();
    const std::size_t nodes_size = nodes.view().size();
    nodes.finish();
    ByteBuffer table(64);
    target_table(table);
    if (!node_tensors_.empty()) {
      const Tables actual = write_tables();
      std::vector<std::string_view> pieces = actual.pieces();
      pieces.push_back(table.view());
      out.replace(start, front.size() + kept, actual.size() + table.view().size(), '\0');
      crc = crc_start();
      char* to = out.data() + start;
      for (std::string_view piece : pieces) to = copy_summed(to, piece, crc);
    } else {
      const std::size_t table_at = start + front.size();
      if (table.view().size() == kept) std::memcpy(out.data() + table_at, table.view().data(), kept);
      else out.replace(table_at, kept, table.view());
      crc = crc_of(crc, table.view());
    }
    report_call_targets(targets_, target_ops_, on_call_target_);
    return sum.after(crc, std::string_view(out).substr(out.size() - nodes_size));
  }

  // The archive up to its target table. Fills the storage and tensor tables and the root
  // module's record first: the node tensors met so far, then the module tree's.
  Tables write_tables() {
    storages_.clear();
    storage_index_ = {};
    tensor_bytes_.reset();
    tensor_count_ = 0;
    root_.reset();
    for (const Tensor& t : node_tensors_) tensor(t);
    in_module_ = true;
    module(gm_, "Module", root_);
    in_module_ = false;

    Tables w;
    ByteBuffer& b = w.bytes;
    if (format_ == PickleFormat::PortableBinary) {
      b.byte(std::endian::native == std::endian::little ? 1 : 0);  // cereal's endianness byte
    } else {
      const std::string& boost_header = boost_archive_header(PickleFormat::BoostBinary);
      b.raw(boost_header.data(), boost_header.size());
    }
    header(b);
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
    b.raw(root_.view().data(), root_.view().size());
    return w;
  }

  // The target table (distinct targets by first use) and the node count.
  void target_table(ByteBuffer& b) const {
    b.varint(targets_.size());
    for (std::string_view t : targets_) b.str(t);
    b.varint(graph_.size());
  }
  // target_table()'s size if the nodes' targets are every target the graph has used.
  std::size_t target_table_size() const {
    const std::span<const std::string* const> targets = graph_.targets_ever_used();
    std::size_t size = varint_size(targets.size()) + varint_size(graph_.size());
    for (const std::string* t : targets) size += varint_size(t->size()) + t->size();
    return size;
  }
  std::size_t expected_nodes_size() const { return 24 * graph_.size() + 64; }
  static std::size_t varint_size(std::uint64_t x) { return 1 + (std::bit_width(x) - (x != 0)) / 7; }

  // Every node in program order. A large graph's nodes, argument lists and names are not in
  // cache, and the nodes are a linked list: the node kAhead places on, and what it points to,
  // are asked for while this one is written, so their memory arrives in parallel rather than
  // one miss after another. Inlined into each writer, as node() is into it.
  [[gnu::always_inline]] void write_nodes(ByteBuffer& b) {
    static constexpr int kAhead = 8;
    Graph::const_iterator ahead = graph_.begin();
    const Graph::const_iterator end = graph_.end();
    for (int k = 0; k < kAhead && ahead != end; ++k) ++ahead;
    for (Graph::const_iterator it = graph_.begin(); it != end; ++it) {
      if (ahead != end) {
        const Node* a = *ahead;
        __builtin_prefetch(a->next());
        __builtin_prefetch(a->args().data());
        __builtin_prefetch(&a->name());
        ++ahead;
      }
      node(*it, b);
    }
  }

  // PickleRecord's fields before the storages.
  void header(ByteBuffer& b) const {
    b.varint(kFormatVersion);
    b.str(gm_.class_name());
    b.signed_varint(kCodegenVersion);
    b.varint(static_cast<std::uint8_t>(graph_.dialect()));
    b.varint(store_hash_ ? 1 : 0);
    // format 3: the content hash, no source generated
    b.native8(store_hash_ ? gm_.content_hash() : std::uint64_t{0});
  }

  // NodeRecord: the op byte with its flags, name, target index, type, args, kwargs, meta.
  // Inlined into the node loop by force, as target_index is: when the loop was instantiated
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
      case Value::Kind::Tensor:
        b.signed_varint(static_cast<std::int64_t>(in_module_ ? tensor(v.tensor()) : node_tensor(v.tensor())));
        break;
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

  // A tensor in a node's args, kwargs or meta: its index in the tensor table, which
  // write_tables() fills with the nodes' tensors first (every use of one is an entry of its
  // own, as in the records).
  std::uint64_t node_tensor(const Tensor& t) {
    node_tensors_.push_back(t);
    return node_tensors_.size() - 1;
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
  const PickleFormat format_;
  const bool store_hash_;
  // Called once per storage: with a sink, write_tables() runs once, after the nodes.
  const std::function<std::string(const std::shared_ptr<Storage>&)>& sink_;
  const std::function<void(Op, std::string_view)>& on_call_target_;
  std::vector<Tensor> node_tensors_;  // the tensors in the nodes' args, kwargs and meta, in order
  std::vector<StorageEntry> storages_;
  fxpack::detail::PointerIndex<Storage, std::uint64_t> storage_index_;
  ByteBuffer tensor_bytes_;  // the tensor table's records
  std::uint64_t tensor_count_ = 0;
  ByteBuffer root_;          // the root module's record
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
  return BinaryWriter(module, options).write_into(out);
}

BinaryPieces write_binary_pieces(const GraphModule& module, const DumpOptions& options) {
  check_binary(options, "write_binary_pieces");
  return BinaryWriter(module, options).write_pieces();
}

}  // namespace fxpack::pickle::detail
