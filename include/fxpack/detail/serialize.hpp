// The record form of a pickle and its one serialization template per type.
//
// Live objects (Graph, Node*, Tensor, Module) are converted to plain records (pickle.cpp);
// the records below are what the five archives hold. dumps() and loads() convert the nodes
// one at a time as the archive writes or reads them (PickleRecord::node_source, on_node),
// so a large graph never exists a second time as records. The exception: dumps() writes the
// two binary encodings (portable-binary, boost-binary) straight from the live objects
// (src/pickle/binary_writer.hpp), the same bytes these templates give through cereal and
// Boost (test_pickle compares them); loads() reads every encoding through the records. Each record type has one
// `save(Ar&) const` and one `load(Ar&)` member template serving cereal (PortableBinary, JSON)
// and Boost.Serialization (text, binary, xml); the field helpers pick the encoding per
// archive family (see fxpack/pickle.hpp for the byte-level summary).
//
// JSON field names (stable; changing one is a format version bump). The document is
// {"fxpack_pickle": record}:
//   record:   format_version, class_name, codegen_version, dialect (v2: "torch-1.13",
//             "torch-2"), has_source_hash (0/1), source_hash (v3: has_content_hash,
//             content_hash), storages, tensors, root, nodes
//   storage:  external (0/1), then base64 (the storage's bytes) or key and nbytes (a
//             storage kept outside the pickle, e.g. as a package record)
//   tensor:   dtype ("float32"...), shape [..], storage (index or -1 for undefined), offset
//   module:   kind, attrs [{key, value}], parameters [{name, tensor}], buffers [...],
//             children [{name, module}]
//   node:     op ("placeholder"...), name, target, type (v2: the type expression, "" for
//             none), args [value], kwargs [{key, value}], meta [{key, value}]   (other
//             formats: target is an index into a table of distinct targets written once
//             before the nodes; the binary ones write type only when the op byte's bit 5
//             says there is one)
//   value:    kind ("none", "bool", "int", "float", "str", "dtype", "device", "layout",
//             "memory_format", "slice", "node", "list", "tuple", "dict", "tensor", v2:
//             "ellipsis") and
//             value | type+index (device) | start+stop+step (slice) | back (node: how
//             many nodes back the referenced node is, 1 = the previous one; negative only in
//             meta) | ref (tensor index) | items (list, tuple, dict entries {key, value})
//
// Only light headers here (boost/core/nvp.hpp, cereal/details/helpers.hpp and a few Boost
// serialization traits): the archive headers live in src/pickle/pickle_cereal.cpp and
// src/pickle/pickle_boost.cpp, one translation unit per archive family.
//
// Loading is bounded: each load runs with a thread-local LoadContext (limits, the input
// left, the record path for messages); every count and length is checked against both
// before anything is allocated, and value/module nesting depth is counted.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <functional>
#include <streambuf>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/core/nvp.hpp>
#include <boost/serialization/binary_object.hpp>
#include <boost/serialization/level.hpp>
#include <boost/serialization/split_free.hpp>
#include <cereal/details/helpers.hpp>

#include "fxpack/errors.hpp"
#include "fxpack/pickle.hpp"

namespace cereal {
class JSONOutputArchive;
class JSONInputArchive;
class PortableBinaryOutputArchive;
class PortableBinaryInputArchive;
}  // namespace cereal
namespace boost::archive {
class text_oarchive;
class text_iarchive;
class binary_oarchive;
class binary_iarchive;
class xml_oarchive;
class xml_iarchive;
}  // namespace boost::archive

namespace fxpack::pickle::detail {

// ---------------------------------------------------------------------------------------
// Archive traits.
template <class Ar>
inline constexpr bool kCereal = std::is_base_of_v<cereal::detail::OutputArchiveBase, Ar> ||
                                std::is_base_of_v<cereal::detail::InputArchiveBase, Ar>;
template <class Ar>
inline constexpr bool kJson =
    std::is_same_v<Ar, cereal::JSONOutputArchive> || std::is_same_v<Ar, cereal::JSONInputArchive>;
// Archives where integers are varints and strings raw bytes.
template <class Ar>
inline constexpr bool kCerealBinary = std::is_same_v<Ar, cereal::PortableBinaryOutputArchive> ||
                                      std::is_same_v<Ar, cereal::PortableBinaryInputArchive>;
template <class Ar>
inline constexpr bool kBoostBinary = std::is_same_v<Ar, boost::archive::binary_oarchive> ||
                                     std::is_same_v<Ar, boost::archive::binary_iarchive>;
template <class Ar>
inline constexpr bool kBinary = kCerealBinary<Ar> || kBoostBinary<Ar>;
template <class Ar>
inline constexpr bool kBoost = !kCereal<Ar>;
// Boost text and xml cannot read inf/nan back: doubles go as bit patterns there.
template <class Ar>
inline constexpr bool kDoubleBits = kBoost<Ar> && !kBoostBinary<Ar>;

template <class Ar>
inline constexpr bool kLoading = [] {
  if constexpr (kCereal<Ar>) return std::is_base_of_v<cereal::detail::InputArchiveBase, Ar>;
  else return Ar::is_loading::value;
}();

// Boost 1.74's xml_iarchive checks an end tag by reading name[length of the tag in the
// input], past the end of a shorter expected name. Names given to it are therefore copies
// padded to kXmlNamePad bytes, and loads refuse xml whose tag names are longer than
// kXmlMaxTag before Boost sees them.
inline constexpr std::size_t kXmlNamePad = 96;
inline constexpr std::size_t kXmlMaxTag = 64;
const char* xml_padded_name(const char* name);

// One nvp helper for both libraries. decltype(auto): Boost's make_nvp returns a const
// prvalue, which is what binds to interface_iarchive::operator&(T&).
template <class Ar, class T>
decltype(auto) nvp(const char* name, T& value) {
  if constexpr (kCereal<Ar>) return cereal::make_nvp<Ar>(name, value);
  else if constexpr (std::is_same_v<Ar, boost::archive::xml_iarchive>)
    return boost::serialization::make_nvp(xml_padded_name(name), value);
  else return boost::serialization::make_nvp(name, value);
}

// ---------------------------------------------------------------------------------------
// The input a load reads from, and the context of one load.

// A read-only streambuf over memory that can tell how much input is left.
class MemBuf : public std::streambuf {
 public:
  MemBuf(const char* data, std::size_t size) : begin_(data) {
    char* p = const_cast<char*>(data);
    setg(p, p, p + size);
  }
  std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()); }
  std::size_t offset() const { return static_cast<std::size_t>(gptr() - begin_); }
  // The binary field helpers read small fields straight from memory (a byte at a time
  // through the archive was a virtual sgetn and a memcpy per byte: a tenth of a load). The
  // archive reads through this same buffer, so consuming here keeps it in step.
  const unsigned char* cursor() const { return reinterpret_cast<const unsigned char*>(gptr()); }
  void consume(std::size_t n) { setg(eback(), gptr() + n, egptr()); }  // n <= remaining()

 protected:
  std::streamsize xsgetn(char* s, std::streamsize n) override {
    std::streamsize k = std::min<std::streamsize>(n, egptr() - gptr());
    if (k > 0) std::memcpy(s, gptr(), static_cast<std::size_t>(k));
    gbump(static_cast<int>(k));
    return k;
  }
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override {
    char* base = eback();
    char* target = dir == std::ios_base::beg ? base + off
                   : dir == std::ios_base::cur ? gptr() + off
                                               : egptr() + off;
    if (target < base || target > egptr()) return pos_type(off_type(-1));
    setg(base, target, egptr());
    return pos_type(target - base);
  }
  pos_type seekpos(pos_type pos, std::ios_base::openmode mode) override {
    return seekoff(off_type(pos), std::ios_base::beg, mode);
  }

 private:
  const char* begin_;
};

struct LoadContext {
  LoadLimits limits;
  // The buffer the binary archive reads from (the field helpers read it directly); null: no
  // input-size check and no direct reads (JSON DOM, user archives).
  MemBuf* input = nullptr;
  std::size_t base_offset = 0;      // bytes before the archive (the header line)
  std::uint32_t depth = 0;
  // The format version of the record being read (set when its version field is read), or
  // being written (always the newest).
  std::uint32_t format_version = kFormatVersion;
  // Record path for messages: ("nodes", 3), ("args", 1) ...
  std::array<std::pair<const char*, std::uint64_t>, 96> path{};
  std::size_t path_len = 0;
  std::uint64_t storage_bytes = 0;

  std::string where() const {
    std::string s;
    std::size_t n = std::min(path_len, path.size());
    for (std::size_t i = 0; i < n;) {
      std::size_t j = i + 1;  // a run of equal segments prints once, with its length
      while (j < n && path[j] == path[i]) ++j;
      if (!s.empty()) s += '.';
      s += path[i].first;
      s += '[' + std::to_string(path[i].second) + ']';
      if (j - i > 1) s += "{x" + std::to_string(j - i) + "}";
      i = j;
    }
    if (input) s += (s.empty() ? "" : ", ") + std::string("byte offset ") +
                    std::to_string(base_offset + input->offset());
    return s.empty() ? std::string() : " (at " + s + ")";
  }
  [[noreturn]] void fail(const std::string& what) const { throw FormatError("pickle: " + what + where()); }
};

// The context of the load running on this thread (a default one for user archives). Inline:
// every field read asks for it.
extern thread_local constinit LoadContext* t_load_context;
LoadContext& default_load_context();
inline LoadContext& load_context() { return t_load_context ? *t_load_context : default_load_context(); }

// RAII: installs a context for the duration of one load.
class ContextScope {
 public:
  explicit ContextScope(LoadContext& ctx);
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  LoadContext* saved_;
};

// Checks a count read from the input before anything is allocated for it.
inline void check_count(std::uint64_t n, std::uint64_t max, std::size_t min_bytes_each, const char* what) {
  LoadContext& c = load_context();
  if (n > max) c.fail(std::string(what) + ": count " + std::to_string(n) + " exceeds the limit " + std::to_string(max));
  if (c.input && min_bytes_each > 0 && n > c.input->remaining() / min_bytes_each)
    c.fail(std::string(what) + ": count " + std::to_string(n) + " exceeds the remaining input (" +
           std::to_string(c.input->remaining()) + " bytes)");
}

// ---------------------------------------------------------------------------------------
// Field helpers: one encoding decision per archive family.

// Unsigned integer: LEB128 varint in binary archives, a number elsewhere. (Always inlined:
// a load reads several per node, mostly one byte each.)
template <class Ar>
[[gnu::always_inline]] inline void u64_field(Ar& ar, const char* name, std::uint64_t& v) {
  if constexpr (kBinary<Ar>) {
    if constexpr (!kLoading<Ar>) {
      unsigned char buf[10];
      std::size_t n = 0;
      std::uint64_t x = v;
      do {
        unsigned char b = x & 0x7f;
        x >>= 7;
        if (x) b |= 0x80;
        buf[n++] = b;
      } while (x);
      if constexpr (kCerealBinary<Ar>) ar.template saveBinary<1>(buf, static_cast<std::streamsize>(n));
      else ar.save_binary(buf, n);
    } else {
      std::uint64_t x = 0;
      LoadContext& c = load_context();
      if (MemBuf* in = c.input; in && in->remaining() >= 10) {
        // A varint is at most 10 bytes: all of them are there, and the byte-at-a-time loop
        // below is left for the archive's last bytes (where it reports a truncation).
        const unsigned char* const start = in->cursor();
        const unsigned char* p = start;
        for (int shift = 0;; shift += 7) {
          const unsigned char b = *p++;
          if (shift == 63 && b > 1) {
            in->consume(static_cast<std::size_t>(p - start));
            c.fail(std::string("varint overflow in ") + name);
          }
          x |= std::uint64_t(b & 0x7f) << shift;
          if (!(b & 0x80)) break;
        }
        in->consume(static_cast<std::size_t>(p - start));
        v = x;
        return;
      }
      for (int shift = 0;; shift += 7) {
        unsigned char b = 0;
        if constexpr (kCerealBinary<Ar>) ar.template loadBinary<1>(&b, 1);
        else ar.load_binary(&b, 1);
        if (shift == 63 && b > 1) c.fail(std::string("varint overflow in ") + name);
        x |= std::uint64_t(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
      }
      v = x;
    }
  } else {
    ar & nvp<Ar>(name, v);
  }
}

template <class Ar>
void i64_field(Ar& ar, const char* name, std::int64_t& v) {
  if constexpr (kBinary<Ar>) {
    std::uint64_t z = 0;
    if constexpr (!kLoading<Ar>) z = (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
    u64_field(ar, name, z);
    if constexpr (kLoading<Ar>) v = static_cast<std::int64_t>((z >> 1) ^ (~(z & 1) + 1));
  } else {
    ar & nvp<Ar>(name, v);
  }
}

template <class Ar>
void u8_field(Ar& ar, const char* name, std::uint8_t& v) {
  if constexpr (kBinary<Ar> || kJson<Ar>) {
    std::uint64_t x = v;
    u64_field(ar, name, x);
    if constexpr (kLoading<Ar>) {
      if (x > 255) load_context().fail(std::string(name) + ": value " + std::to_string(x) + " out of range");
      v = static_cast<std::uint8_t>(x);
    }
  } else {
    ar & nvp<Ar>(name, v);
  }
}

template <class Ar>
void f64_field(Ar& ar, const char* name, double& v) {
  if constexpr (kDoubleBits<Ar>) {
    std::uint64_t bits = std::bit_cast<std::uint64_t>(v);
    ar & nvp<Ar>(name, bits);
    if constexpr (kLoading<Ar>) v = std::bit_cast<double>(bits);
  } else {
    ar & nvp<Ar>(name, v);
  }
}

// Bytes and strings: varint length + raw bytes (binary), length + base64 (Boost text/xml),
// a JSON string (JSON; `base64` selects base64 for storage bytes).
std::string base64_encode(const std::string& bytes);
std::string base64_decode(const std::string& text);  // throws FormatError on bad input

template <class Ar>
void bytes_field(Ar& ar, const char* name, std::string& s, std::uint64_t max, bool base64_in_json) {
  if constexpr (kJson<Ar>) {
    if (base64_in_json) {
      std::string enc;
      if constexpr (!kLoading<Ar>) enc = base64_encode(s);
      ar & nvp<Ar>(name, enc);
      if constexpr (kLoading<Ar>) {
        if (enc.size() / 4 * 3 > max) load_context().fail(std::string(name) + ": length exceeds the limit");
        s = base64_decode(enc);
      }
    } else {
      ar & nvp<Ar>(name, s);
      if constexpr (kLoading<Ar>)
        if (s.size() > max) load_context().fail(std::string(name) + ": length " + std::to_string(s.size()) + " exceeds the limit " + std::to_string(max));
    }
  } else {
    std::uint64_t n = s.size();
    if constexpr (kBoost<Ar> && !kBinary<Ar>) {
      // text/xml: the length as its own item, the bytes as a base64 binary object.
      std::string len_name = std::string(name) + "_len";
      ar & nvp<Ar>(len_name.c_str(), n);
    } else {
      u64_field(ar, name, n);
    }
    if constexpr (kLoading<Ar>) {
      check_count(n, max, 1, name);
      if constexpr (kBinary<Ar>) {
        // check_count saw the bytes are there: copied straight, not zero-filled then read
        if (MemBuf* in = load_context().input) {
          s.assign(reinterpret_cast<const char*>(in->cursor()), static_cast<std::size_t>(n));
          in->consume(static_cast<std::size_t>(n));
          return;
        }
      }
      s.resize(static_cast<std::size_t>(n));
    }
    if constexpr (kCerealBinary<Ar>) {
      if constexpr (kLoading<Ar>) ar.template loadBinary<1>(s.data(), static_cast<std::streamsize>(n));
      else ar.template saveBinary<1>(s.data(), static_cast<std::streamsize>(n));
    } else if constexpr (kBoostBinary<Ar>) {
      if (n == 0) return;
      if constexpr (kLoading<Ar>) ar.load_binary(s.data(), n);
      else ar.save_binary(s.data(), n);
    } else {
      auto obj = boost::serialization::make_binary_object(s.data(), n);
      ar & nvp<Ar>(name, obj);
    }
  }
}

template <class Ar>
void str_field(Ar& ar, const char* name, std::string& s) {
  bytes_field(ar, name, s, load_context().limits.max_string_length, false);
}

// A small enum: its name in JSON, a number elsewhere. `names` has `count` entries.
template <class Ar>
void enum_field(Ar& ar, const char* name, std::uint8_t& v, const char* const* names, std::size_t count) {
  if constexpr (kJson<Ar>) {
    std::string s;
    if constexpr (!kLoading<Ar>) s = v < count ? names[v] : "?";
    ar & nvp<Ar>(name, s);
    if constexpr (kLoading<Ar>) {
      for (std::size_t i = 0; i < count; ++i)
        if (s == names[i]) {
          v = static_cast<std::uint8_t>(i);
          return;
        }
      load_context().fail(std::string("unknown ") + name + " '" + s.substr(0, 64) + "'");
    }
  } else {
    u8_field(ar, name, v);
    if constexpr (kLoading<Ar>)
      if (v >= count) load_context().fail(std::string("unknown ") + name + " " + std::to_string(v));
  }
}

inline constexpr const char* kOpNames[] = {"placeholder", "get_attr",    "call_function",
                                           "call_method", "call_module", "output"};
inline constexpr const char* kValueKindNames[] = {
    "none",          "bool",  "int",  "float", "str",  "dtype", "device", "layout",
    "memory_format", "slice", "node", "list",  "tuple", "dict", "tensor", "ellipsis"};
inline constexpr const char* kDTypeNames[] = {"float32", "float64",  "int64", "bool", "uint8",
                                              "float16", "bfloat16", "int32", "int8", "int16"};
inline constexpr const char* kDialectNames[] = {"torch-1.13", "torch-2"};

// A vector as a sequence: the count (checked on load before reserving), then the items.
template <class T>
struct Seq {
  std::vector<T>* v;
  const char* what;
  std::size_t min_bytes_each;
  // Loading: when set, each item goes to it (with its index and the count) as soon as it is
  // read, one reused T, and `v` stays empty.
  const std::function<void(T&, std::uint64_t, std::uint64_t)>* sink = nullptr;
  // Saving: when set, the `count` items are made by it one at a time (into one reused,
  // reset T) as they are written, and `v` is not read.
  const std::function<void(std::uint64_t, T&)>* source = nullptr;
  std::uint64_t count = 0;

  // A fresh item for the next streamed one (keeping its memory when T can).
  static void reset(T& item) {
    if constexpr (requires { item.clear(); }) item.clear();
    else item = T{};
  }

  template <class Ar>
  void save(Ar& ar) const {
    std::uint64_t n = source ? count : v->size();
    if constexpr (kJson<Ar>) ar(cereal::SizeTag<std::uint64_t&>(n));
    else u64_field(ar, "count", n);
    const auto put = [&](const T& x) {
      if constexpr (kCereal<Ar>) ar(x);
      else ar & nvp<Ar>("item", x);
    };
    if (source) {
      T item;
      for (std::uint64_t i = 0; i < n; ++i) {
        reset(item);
        (*source)(i, item);
        put(item);
      }
    } else {
      for (const T& x : *v) put(x);
    }
  }
  template <class Ar>
  void load(Ar& ar) {
    LoadContext& c = load_context();
    std::uint64_t n = 0;
    if constexpr (kJson<Ar>) ar(cereal::SizeTag<std::uint64_t&>(n));
    else u64_field(ar, "count", n);
    check_count(n, c.limits.max_items, min_bytes_each, what);
    v->clear();
    v->reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, 1u << 16)));
    std::size_t slot = c.path_len++;
    if (slot < c.path.size()) c.path[slot] = {what, 0};
    if (sink) {
      T item;
      for (std::uint64_t i = 0; i < n; ++i) {
        if (slot < c.path.size()) c.path[slot].second = i;
        reset(item);
        if constexpr (kCereal<Ar>) ar(item);
        else ar & nvp<Ar>("item", item);
        (*sink)(item, i, n);
      }
      c.path_len = slot;
      return;
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      if (slot < c.path.size()) c.path[slot].second = i;
      v->emplace_back();
      if constexpr (kCereal<Ar>) ar(v->back());
      else ar & nvp<Ar>("item", v->back());
    }
    c.path_len = slot;
  }
};

template <class Ar, class T>
void seq_field(Ar& ar, const char* name, const std::vector<T>& v, std::size_t min_bytes_each = 1) {
  Seq<T> s{const_cast<std::vector<T>*>(&v), name, min_bytes_each};
  ar & nvp<Ar>(name, s);
}

// ---------------------------------------------------------------------------------------
// Records.

struct NamedValue;

// A Value. `kind` is Value::Kind (the variant index).
struct ValueRecord {
  std::uint8_t kind = 0;
  std::int64_t i = 0;  // bool, int, dtype, layout, memory format, device index, tensor index,
                       // node: the referencing node's index minus the referenced one's
  double d = 0;
  std::string s;                     // str, device type
  std::vector<ValueRecord> items;    // list, tuple; slice: start, stop, step (none or int)
  std::vector<NamedValue> entries;   // dict

  template <class Ar> void save(Ar& ar) const;
  template <class Ar> void load(Ar& ar);
  template <class Ar> void io(Ar& ar);
};

struct NamedValue {
  std::string key;
  ValueRecord value;
  template <class Ar> void save(Ar& ar) const { const_cast<NamedValue*>(this)->io(ar); }
  template <class Ar> void load(Ar& ar) { io(ar); }
  template <class Ar> void io(Ar& ar) {
    str_field(ar, "key", key);
    ar & nvp<Ar>("value", value);
  }
};

struct StorageRecord {
  bool external = false;  // kept outside the pickle (DumpOptions::storage_sink)
  std::string key;        // external: the sink's key
  std::uint64_t nbytes = 0;  // external: the byte count
  std::string bytes;      // inline: the bytes
  template <class Ar> void save(Ar& ar) const { const_cast<StorageRecord*>(this)->io(ar); }
  template <class Ar> void load(Ar& ar) { io(ar); }
  template <class Ar> void io(Ar& ar) {
    LoadContext& c = load_context();
    std::uint64_t left = c.limits.max_tensor_bytes - std::min(c.limits.max_tensor_bytes, c.storage_bytes);
    std::uint8_t ext = external;
    u8_field(ar, "external", ext);
    if constexpr (kLoading<Ar>) {
      if (ext > 1) c.fail("storage 'external' flag " + std::to_string(ext));
      external = ext != 0;
    }
    if (external) {
      str_field(ar, "key", key);
      u64_field(ar, "nbytes", nbytes);
      if constexpr (kLoading<Ar>) {
        if (nbytes > left)
          c.fail("storage of " + std::to_string(nbytes) + " bytes exceeds max_tensor_bytes");
        c.storage_bytes += nbytes;
      }
    } else {
      bytes_field(ar, kJson<Ar> ? "base64" : "bytes", bytes, left, true);
      if constexpr (kLoading<Ar>) c.storage_bytes += bytes.size();
    }
  }
};

struct TensorRecord {
  std::uint8_t dtype = 0;
  std::vector<std::int64_t> shape;
  std::int64_t storage = -1;  // -1: an undefined Tensor
  std::uint64_t offset = 0;
  template <class Ar> void save(Ar& ar) const { const_cast<TensorRecord*>(this)->io(ar); }
  template <class Ar> void load(Ar& ar) { io(ar); }
  template <class Ar> void io(Ar& ar);
};

// A sequence of integers: a plain JSON array of numbers, varints in binary archives.
struct IntSeq {
  std::vector<std::int64_t>* v;
  template <class Ar>
  void save(Ar& ar) const {
    std::uint64_t n = v->size();
    if constexpr (kJson<Ar>) {
      ar(cereal::SizeTag<std::uint64_t&>(n));
      for (std::int64_t x : *v) ar(x);
    } else {
      u64_field(ar, "count", n);
      for (std::int64_t x : *v) i64_field(ar, "item", x);
    }
  }
  template <class Ar>
  void load(Ar& ar) {
    std::uint64_t n = 0;
    if constexpr (kJson<Ar>) ar(cereal::SizeTag<std::uint64_t&>(n));
    else u64_field(ar, "count", n);
    check_count(n, 64, 1, "shape");
    v->assign(static_cast<std::size_t>(n), 0);
    for (auto& x : *v) {
      if constexpr (kJson<Ar>) ar(x);
      else i64_field(ar, "item", x);
    }
  }
};

template <class Ar>
void TensorRecord::io(Ar& ar) {
  enum_field(ar, "dtype", dtype, kDTypeNames, std::size(kDTypeNames));
  IntSeq dims{&shape};
  ar & nvp<Ar>("shape", dims);
  i64_field(ar, "storage", storage);
  u64_field(ar, "offset", offset);
}

struct NamedTensor {
  std::string name;
  std::uint64_t tensor = 0;
  template <class Ar> void save(Ar& ar) const { const_cast<NamedTensor*>(this)->io(ar); }
  template <class Ar> void load(Ar& ar) { io(ar); }
  template <class Ar> void io(Ar& ar) {
    str_field(ar, "name", name);
    u64_field(ar, "tensor", tensor);
  }
};

struct NamedModule;

struct ModuleRecord {
  std::string kind;
  std::vector<NamedValue> attrs;
  std::vector<NamedTensor> parameters;
  std::vector<NamedTensor> buffers;
  std::vector<NamedModule> children;
  template <class Ar> void save(Ar& ar) const { const_cast<ModuleRecord*>(this)->io(ar); }
  template <class Ar> void load(Ar& ar) {
    LoadContext& c = load_context();
    if (++c.depth > c.limits.max_nesting_depth)
      c.fail("module tree nesting depth exceeds the limit " + std::to_string(c.limits.max_nesting_depth));
    io(ar);
    --c.depth;
  }
  template <class Ar> void io(Ar& ar);
};

struct NamedModule {
  std::string name;
  ModuleRecord module;
  template <class Ar> void save(Ar& ar) const { const_cast<NamedModule*>(this)->io(ar); }
  template <class Ar> void load(Ar& ar) { io(ar); }
  template <class Ar> void io(Ar& ar) {
    str_field(ar, "name", name);
    ar & nvp<Ar>("module", module);
  }
};

template <class Ar>
void ModuleRecord::io(Ar& ar) {
  str_field(ar, "kind", kind);
  seq_field(ar, "attrs", attrs, 2);
  seq_field(ar, "parameters", parameters, 2);
  seq_field(ar, "buffers", buffers, 2);
  seq_field(ar, "children", children, 6);
}

struct NodeRecord {
  std::uint8_t op = 0;
  std::string name;
  std::string target;
  std::string type;  // v2
  std::vector<ValueRecord> args;
  std::vector<NamedValue> kwargs;
  std::vector<NamedValue> meta;
  template <class Ar> void save(Ar& ar) const { const_cast<NodeRecord*>(this)->io(ar); }
  template <class Ar> void load(Ar& ar) { io(ar); }
  std::uint64_t target_index = 0;  // into PickleRecord::targets (all formats but JSON)
  // Back to a fresh record, keeping the vectors' and strings' memory: the one record that
  // streams every node (Seq's sink and source) then allocates nothing per node.
  void clear() {
    op = 0;
    name.clear();
    target.clear();
    type.clear();
    args.clear();
    kwargs.clear();
    meta.clear();
    target_index = 0;
  }
  template <class Ar> void io(Ar& ar) {
    const bool v2 = load_context().format_version >= 2;
    if constexpr (kBinary<Ar>) {
      // One byte: the op in bits 0-4 (0-5 in v1), bit 5 "has a type" (v2), bit 6 "has
      // kwargs", bit 7 "has meta"; the type and the two tables are written only when flagged.
      std::uint8_t b = static_cast<std::uint8_t>(op | (type.empty() ? 0 : 0x20) | (kwargs.empty() ? 0 : 0x40) |
                                                 (meta.empty() ? 0 : 0x80));
      u8_field(ar, "op", b);
      if constexpr (kLoading<Ar>) {
        op = b & (v2 ? 0x1f : 0x3f);
        if (op >= std::size(kOpNames)) load_context().fail("unknown op " + std::to_string(op));
      }
      str_field(ar, "name", name);
      u64_field(ar, "target", target_index);
      if (v2 && (b & 0x20)) str_field(ar, "type", type);
      seq_field(ar, "args", args);
      if (b & 0x40) seq_field(ar, "kwargs", kwargs, 2);
      if (b & 0x80) seq_field(ar, "meta", meta, 2);
    } else {
      enum_field(ar, "op", op, kOpNames, std::size(kOpNames));
      str_field(ar, "name", name);
      if constexpr (kJson<Ar>) str_field(ar, "target", target);
      else u64_field(ar, "target", target_index);
      if (v2) str_field(ar, "type", type);
      seq_field(ar, "args", args);
      seq_field(ar, "kwargs", kwargs, 2);
      seq_field(ar, "meta", meta, 2);
    }
  }
};

struct PickleRecord {
  std::uint32_t format_version = kFormatVersion;
  std::string class_name;
  std::int64_t codegen_version = 0;
  std::uint8_t dialect = 0;  // v2: fxpack::Dialect; v1 graphs are 1.13's
  // The stored hash: of the generated source (codegen.hpp's source_hash) in formats 1 and
  // 2, of the graph's content (content_hash.hpp) from format 3 on.
  bool has_source_hash = false;
  std::uint64_t source_hash = 0;
  std::vector<StorageRecord> storages;
  std::vector<TensorRecord> tensors;
  ModuleRecord root;
  // Node targets, each once (not in JSON, where nodes hold their target inline).
  std::vector<std::string> targets;
  bool targets_interned = false;  // set when loaded from an archive that has the table
  std::vector<NodeRecord> nodes;
  // Loading: when set, each node goes to it as soon as it is read, with its index and the
  // node count, instead of into `nodes`, so a large graph is built without holding a record
  // per node.
  std::function<void(NodeRecord&, std::uint64_t, std::uint64_t)> on_node{};
  // Saving: when set, the node_count nodes are made by it as they are written, instead of
  // read from `nodes`.
  std::function<void(std::uint64_t, NodeRecord&)> node_source{};
  std::uint64_t node_count = 0;

  template <class Ar> void save(Ar& ar) const { const_cast<PickleRecord*>(this)->io(ar); }
  template <class Ar> void load(Ar& ar) { io(ar); }
  template <class Ar> void io(Ar& ar) {
    std::uint64_t version = format_version;
    u64_field(ar, "format_version", version);
    if constexpr (kLoading<Ar>) {
      if (version > kFormatVersion)
        throw FormatError("pickle format version " + std::to_string(version) +
                          " is newer than this build supports (" + std::to_string(kFormatVersion) + ")");
      if (version == 0) load_context().fail("pickle format version 0 is invalid");
      format_version = static_cast<std::uint32_t>(version);
    }
    load_context().format_version = format_version;
    str_field(ar, "class_name", class_name);
    i64_field(ar, "codegen_version", codegen_version);
    if (format_version >= 2) enum_field(ar, "dialect", dialect, kDialectNames, std::size(kDialectNames));
    const bool content = format_version >= 3;  // the hash's field names say what it hashes
    std::uint8_t h = has_source_hash;
    u8_field(ar, content ? "has_content_hash" : "has_source_hash", h);
    has_source_hash = h != 0;
    if constexpr (kBinary<Ar>) {
      // fixed 8 bytes: a hash is uniformly distributed, a varint would only grow it
      if constexpr (kCerealBinary<Ar>) {
        if constexpr (kLoading<Ar>) ar.template loadBinary<8>(&source_hash, 8);
        else ar.template saveBinary<8>(&source_hash, 8);
      } else {
        if constexpr (kLoading<Ar>) ar.load_binary(&source_hash, 8);
        else ar.save_binary(&source_hash, 8);
      }
    } else {
      ar & nvp<Ar>(content ? "content_hash" : "source_hash", source_hash);
    }
    {
      LoadContext& c = load_context();
      if constexpr (kLoading<Ar>) c.storage_bytes = 0;
    }
    seq_field(ar, "storages", storages);
    seq_field(ar, "tensors", tensors, 4);
    ar & nvp<Ar>("root", root);
    if constexpr (!kJson<Ar>) {
      std::uint64_t n = targets.size();
      u64_field(ar, "target_count", n);
      if constexpr (kLoading<Ar>) {
        check_count(n, load_context().limits.max_items, 1, "targets");
        targets.assign(static_cast<std::size_t>(n), std::string());
        targets_interned = true;
      }
      for (auto& t : targets) str_field(ar, "target", t);
    }
    std::uint64_t max_nodes = load_context().limits.max_nodes;
    if constexpr (kLoading<Ar>) {
      // the node table gets its own limit on top of max_items
      LoadContext& c = load_context();
      auto saved = c.limits.max_items;
      c.limits.max_items = std::min(saved, max_nodes);
      Seq<NodeRecord> seq{&nodes, "nodes", 6, on_node ? &on_node : nullptr};
      ar & nvp<Ar>("nodes", seq);
      c.limits.max_items = saved;
    } else {
      Seq<NodeRecord> seq{&nodes, "nodes", 6, nullptr, node_source ? &node_source : nullptr, node_count};
      ar & nvp<Ar>("nodes", seq);
    }
  }
};

// ValueRecord: kind, then only the fields of that kind.
template <class Ar>
void ValueRecord::save(Ar& ar) const {
  const_cast<ValueRecord*>(this)->io(ar);
}
template <class Ar>
void ValueRecord::load(Ar& ar) {
  LoadContext& c = load_context();
  if (++c.depth > c.limits.max_nesting_depth)
    c.fail("value nesting depth exceeds the limit " + std::to_string(c.limits.max_nesting_depth));
  io(ar);
  --c.depth;
}
template <class Ar>
void ValueRecord::io(Ar& ar) {
  enum_field(ar, "kind", kind, kValueKindNames, std::size(kValueKindNames));
  switch (kind) {
    case 0: break;                              // none
    case 1: {                                   // bool
      if constexpr (kJson<Ar>) {
        bool b = i != 0;
        ar & nvp<Ar>("value", b);
        i = b;
      } else {
        std::uint8_t b = static_cast<std::uint8_t>(i);
        u8_field(ar, "value", b);
        if (b > 1) load_context().fail("bool value " + std::to_string(b));
        i = b;
      }
      break;
    }
    case 2: i64_field(ar, "value", i); break;   // int
    case 3: f64_field(ar, "value", d); break;   // float
    case 4: str_field(ar, "value", s); break;   // str
    case 5: {                                   // dtype
      std::uint8_t t = static_cast<std::uint8_t>(i);
      enum_field(ar, "value", t, kDTypeNames, std::size(kDTypeNames));
      i = t;
      break;
    }
    case 6:                                     // device
      str_field(ar, "type", s);
      i64_field(ar, "index", i);
      break;
    case 7:                                     // layout
    case 8: i64_field(ar, "value", i); break;   // memory format
    case 9: {                                   // slice
      if constexpr (kLoading<Ar>) items.resize(3);
      if (items.size() != 3) throw FormatError("pickle: malformed slice record");
      ar & nvp<Ar>("start", items[0]);
      ar & nvp<Ar>("stop", items[1]);
      ar & nvp<Ar>("step", items[2]);
      break;
    }
    case 10: i64_field(ar, "back", i); break;   // node: distance back (1 = the previous node)
    case 11:                                    // list
    case 12: seq_field(ar, "items", items); break;  // tuple
    case 13: seq_field(ar, "items", entries, 2); break;  // dict
    case 14: i64_field(ar, "ref", i); break;    // tensor
    case 15: break;                             // ellipsis (v2)
    default: load_context().fail("unknown value kind " + std::to_string(kind));
  }
}

// ---------------------------------------------------------------------------------------
// Conversion between live objects and records (pickle.cpp).
PickleRecord to_record(const GraphModule& module, bool store_source_hash,
                       const std::function<std::string(const std::shared_ptr<Storage>&)>& storage_sink = {});
Loaded from_record(PickleRecord record, const LoadOptions& options, PickleFormat format);
// The record of `module` handed to `write`, its nodes made one at a time as the archive
// writes them (never all held as records), as `options` say (hash, storage sink, call
// targets). `targets_inline`: the node records carry their target string (what JSON
// writes), not only its index in the table.
void save_streaming(const GraphModule& module, const DumpOptions& options, bool targets_inline,
                    const std::function<void(const PickleRecord&)>& write);
// from_record, building the graph while `read` fills the record (its nodes never held as
// records); the archive's format version must be `header_version`.
Loaded load_streaming(const std::function<void(PickleRecord&)>& read, std::uint32_t header_version,
                      const LoadOptions& options, PickleFormat format);

}  // namespace fxpack::pickle::detail

// ---------------------------------------------------------------------------------------
// Embedding a GraphModule in a user's own archive (any of the five archive types above):
//
//   struct Checkpoint {
//     std::shared_ptr<fxpack::GraphModule> model;
//     std::int64_t step = 0;
//     template <class Ar> void serialize(Ar& ar, unsigned) {   // cereal and Boost
//       auto m = fxpack::pickle::member(model);
//       ar & FXPACK_PICKLE_NVP(ar, "model", m) & FXPACK_PICKLE_NVP(ar, "step", step);
//     }
//   };
//
// Writes the same PickleRecord as dumps() (without the header line) and loads it with the
// same checks, LoadLimits from `options`, and the result is a dirty LazyGraphModule. Errors
// on load are FormatError; the input-size bound is not available inside a foreign archive,
// so LoadLimits are the only bound there.
namespace fxpack::pickle {
class Member {
 public:
  explicit Member(std::shared_ptr<GraphModule>& module, LoadOptions options = {})
      : module_(&module), options_(std::move(options)) {}

  template <class Ar>
  void save(Ar& ar) const {
    static_assert(detail::kCereal<Ar> ? detail::kJson<Ar> || detail::kCerealBinary<Ar> : true,
                  "fxpack::pickle::Member: cereal JSON or PortableBinary archives only");
    if (!*module_) throw ValueError("pickle: cannot save a null GraphModule");
    detail::PickleRecord r = detail::to_record(**module_, true);
    ar & detail::nvp<Ar>("fxpack_pickle", r);
  }
  template <class Ar>
  void load(Ar& ar) {
    detail::LoadContext ctx;
    ctx.limits = options_.limits;
    detail::ContextScope scope(ctx);
    detail::PickleRecord r;
    try {
      ar & detail::nvp<Ar>("fxpack_pickle", r);
    } catch (const FormatError&) {
      throw;
    } catch (const std::exception& e) {
      ctx.fail(std::string("corrupt embedded pickle: ") + e.what());
    }
    PickleFormat f = detail::kJson<Ar>          ? PickleFormat::Json
                     : detail::kCerealBinary<Ar> ? PickleFormat::PortableBinary
                     : detail::kBoostBinary<Ar>  ? PickleFormat::BoostBinary
                     : std::is_same_v<Ar, boost::archive::text_iarchive> ? PickleFormat::BoostText
                                                                        : PickleFormat::BoostXml;
    try {
      *module_ = detail::from_record(std::move(r), options_, f).module;
    } catch (const FormatError&) {
      throw;
    } catch (const std::exception& e) {
      throw FormatError(std::string("pickle: ") + e.what());
    }
  }

 private:
  std::shared_ptr<GraphModule>* module_;
  LoadOptions options_;
};

inline Member member(std::shared_ptr<GraphModule>& module, LoadOptions options = {}) {
  return Member(module, std::move(options));
}
}  // namespace fxpack::pickle

// An nvp for either library inside a template serving both.
#define FXPACK_PICKLE_NVP(ar, name, x) \
  ::fxpack::pickle::detail::nvp<std::remove_reference_t<decltype(ar)>>(name, x)

// Boost: route every record type to its save/load members, and write no class information
// (the pickle header carries the version).
#define FXPACK_PICKLE_BOOST(T)                                                           \
  namespace boost::serialization {                                                       \
  template <class Ar>                                                                    \
  void save(Ar& ar, const T& t, const unsigned int) { t.save(ar); }                      \
  template <class Ar>                                                                    \
  void load(Ar& ar, T& t, const unsigned int) { t.load(ar); }                            \
  template <class Ar>                                                                    \
  void serialize(Ar& ar, T& t, const unsigned int v) { split_free(ar, t, v); }           \
  }                                                                                      \
  BOOST_CLASS_IMPLEMENTATION(T, boost::serialization::object_serializable)

FXPACK_PICKLE_BOOST(fxpack::pickle::detail::ValueRecord)
FXPACK_PICKLE_BOOST(fxpack::pickle::detail::NamedValue)
FXPACK_PICKLE_BOOST(fxpack::pickle::detail::StorageRecord)
FXPACK_PICKLE_BOOST(fxpack::pickle::detail::TensorRecord)
FXPACK_PICKLE_BOOST(fxpack::pickle::detail::IntSeq)
FXPACK_PICKLE_BOOST(fxpack::pickle::detail::NamedTensor)
FXPACK_PICKLE_BOOST(fxpack::pickle::detail::ModuleRecord)
FXPACK_PICKLE_BOOST(fxpack::pickle::detail::NamedModule)
FXPACK_PICKLE_BOOST(fxpack::pickle::detail::NodeRecord)
FXPACK_PICKLE_BOOST(fxpack::pickle::detail::PickleRecord)
FXPACK_PICKLE_BOOST(fxpack::pickle::Member)

namespace boost::serialization {
template <class Ar, class T>
void save(Ar& ar, const fxpack::pickle::detail::Seq<T>& t, const unsigned int) { t.save(ar); }
template <class Ar, class T>
void load(Ar& ar, fxpack::pickle::detail::Seq<T>& t, const unsigned int) { t.load(ar); }
template <class Ar, class T>
void serialize(Ar& ar, fxpack::pickle::detail::Seq<T>& t, const unsigned int v) { split_free(ar, t, v); }
template <class T>
struct implementation_level_impl<const fxpack::pickle::detail::Seq<T>> {
  typedef mpl::integral_c_tag tag;
  typedef mpl::int_<object_serializable> type;
  BOOST_STATIC_CONSTANT(int, value = implementation_level_impl::type::value);
};
}  // namespace boost::serialization

// The archive writers and readers, one translation unit per library (pickle_cereal.cpp,
// pickle_boost.cpp). Readers take the input positioned after the header line.
namespace fxpack::pickle::detail {
void write_cereal(std::ostream& out, const PickleRecord& record, PickleFormat format);
void read_cereal(std::istream& in, PickleRecord& record, PickleFormat format);
void write_boost(std::ostream& out, const PickleRecord& record, PickleFormat format);
void read_boost(std::istream& in, PickleRecord& record, PickleFormat format);
// The bytes Boost writes first in an archive of `format` (signature, library version):
// checked before a Boost reader touches the input, whose own header parsing trusts sizes.
const std::string& boost_archive_header(PickleFormat format);
}  // namespace fxpack::pickle::detail
