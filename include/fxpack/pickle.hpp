// Pickling GraphModules: save the graph and its module tree, load them back as a
// LazyGraphModule. No code is stored and none is run on load.
//
// == What a pickle holds ==
//
// Only data: the class name, every node of the graph (op, name, target, type, args, kwargs
// and meta, exactly: list vs tuple, dict/kwargs/meta order, inf/nan/-0.0 doubles), the
// graph's codegen dialect (dialect.hpp), the module
// tree (kind, attributes, parameters, buffers, children, in registration order), the
// tensors (dtype, shape, storage index, byte offset) and each Storage once (two tensors that
// shared a Storage share one again after load), plus generated-source metadata: the codegen
// version (kCodegenVersion) and a 64-bit hash of what the graph generates: from format 3 on
// content_hash(graph) (content_hash.hpp: what codegen reads, hashed without generating any
// source); formats 1 and 2 stored the source_hash() of python_code(graph) at dump time.
//
// == The bytes ==
//
// Every pickle starts with one ASCII line naming the format, the pickle format version and
// the CRC-32 (zlib's) of everything after the line, as 8 lowercase hex digits:
//
//     fxpack.pickle <format> <version> <crc32>\n   e.g. "fxpack.pickle portable-binary 3 5e0c1a9b\n"
//
// (format 1 had no checksum: "fxpack.pickle portable-binary 1\n"). A body whose CRC differs
// — a flipped weight byte — is refused before anything is parsed.
// where <format> is portable-binary, json, boost-text, boost-binary or boost-xml. The rest
// is one archive of that library holding the PickleRecord of fxpack/detail/serialize.hpp
// (format_version again, class_name, codegen_version, has_source_hash, source_hash,
// storages, tensors, root module, nodes; format 2 adds the dialect and node types; format 3
// stores the content hash there, named has_content_hash, content_hash). Per
// format:
//
//   portable-binary  cereal PortableBinary; integers and sizes as LEB128 varints (signed
//                    ones zig-zag), doubles as 8 little-endian bytes, strings and storage
//                    bytes as varint length + raw bytes, node targets interned in a table,
//                    node references as the distance back, a node's op and "has kwargs/meta"
//                    flags in one byte. The default: compact (about 16 bytes per node of a
//                    chain graph, 36% of PyTorch's pickle), portable.
//   json             cereal JSON: stable, readable field names (see serialize.hpp),
//                    ops/value kinds/dtypes as names ("call_function", "tuple", "float32"),
//                    doubles as JSON numbers (NaN, Infinity, -Infinity as rapidjson
//                    writes them; -0.0 kept; a NaN's sign and payload bits are not), storage
//                    bytes as base64, node targets inline. Strict JSON readers need
//                    NaN/Infinity support; `tail -n +2 f` strips the header line.
//   boost-text       Boost.Serialization text (Boost 1.74 archive header); doubles as
//                    their IEEE-754 bit pattern (uint64) because Boost text cannot read
//                    inf/nan back; strings and bytes as length + base64.
//   boost-binary     Boost.Serialization binary (native endianness: not portable across
//                    architectures); encodings as for portable-binary.
//   boost-xml        Boost.Serialization xml; doubles as bit patterns, strings and bytes as
//                    length + base64, every item a named element.
//
// Doubles are bit-exact in every other format (inf, -inf, nan payloads, -0.0). Value kinds
// are written as an explicit tag (Value::Kind, checked on load) rather than through the
// libraries' std::variant support, which Boost 1.74 lacks; Slice's optionals likewise.
//
// A GraphModule can also be a member of the caller's own cereal or Boost archive:
// fxpack::pickle::member() in fxpack/detail/serialize.hpp (same record, same checks).
//
// Format versions: 1, then 2 (header checksum, codegen dialect, node types, Ellipsis values,
// the float16/bfloat16/int32/int8/int16 dtypes), then 3 (the content hash in place of the
// source hash). A newer version is refused with a
// FormatError naming both versions; every older version loads forever
// (fixtures/pickle/v<N>/; a format 1 graph is in the 1.13 dialect).
//
// == Loading untrusted bytes ==
//
// A pickle may come from anyone. Every count, length, index, dtype, shape and nesting depth
// is checked against LoadLimits and against the input left before anything is allocated;
// node references must point to earlier nodes; node names must come back unchanged. Any
// problem — truncation, bit flips, hostile sizes, unknown kinds — raises fxpack::FormatError
// saying what and where (record path such as "nodes[3].args[1]", node name, byte offset when
// known). Nothing else escapes loads()/load().
//
// Leaf modules come back as plain Modules carrying their kind, attributes and tensors; a
// registered kind is checked with its ModuleKind::validate. A call_module target whose kind
// is not registered is accepted as data (it can be inspected and printed; calling it fails
// with an error naming the kind), listed in LoadReport::unregistered_module_kinds and passed
// to the warning hook — or refused with a FormatError listing every such kind when
// LoadOptions::refuse_unregistered_module_kinds is set.
//
// == After loading ==
//
// The result is always a LazyGraphModule (is_lazy(), needs_recompile() true) with the stored
// class name; its first call, code() or to_string() performs the one real recompile. The
// stored hash is compared with the same hash of the loaded graph — format 3: its
// content_hash(); formats 1 and 2: the source_hash() of the source generated from it (a
// difference means e.g. another code generator, or a graph that is not what was saved):
// by default (SourceHashCheck::OnFirstCodegen) in that first recompile, before the code or
// plan is installed, so loading never generates code; with AtLoad the loader computes it at
// once (format 1 and 2: python_code, not a recompile) and the verdict is in
// LoadReport::source_hash_matches. A difference is a warning (to the warning hook, by
// default a line on stderr; on first codegen to the copy of the hook the module took at
// load) or, with strict_source_hash, a FormatError: from the load,
// or from the first call/code() — which then installs nothing, leaves the module dirty and
// fails the same way on every later use. Either way generated code from a graph that does
// not match the stored hash is never run under strict_source_hash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fxpack/graph_module.hpp"

namespace fxpack::pickle {

// The pickle format version this build writes, and the newest it reads.
inline constexpr std::uint32_t kFormatVersion = 3;

enum class PickleFormat : std::uint8_t {
  PortableBinary,  // default
  Json,
  BoostText,
  BoostBinary,
  BoostXml,
};
inline constexpr int kPickleFormatCount = 5;

// "portable-binary", "json", "boost-text", "boost-binary", "boost-xml" (the header token).
std::string_view format_name(PickleFormat format);

struct DumpOptions {
  PickleFormat format = PickleFormat::PortableBinary;
  // Store the graph's content hash (GraphModule::content_hash: one pass over the nodes, once
  // per graph generation; no code is generated). Without it the loader cannot compare
  // (has_source_hash is false in the pickle).
  bool store_source_hash = true;
  // When set, storages are not written into the pickle: each is handed to the sink, which
  // keeps it elsewhere (e.g. a package record) and returns a key; the pickle stores the key
  // and the byte count. Called once per distinct Storage.
  std::function<std::string(const std::shared_ptr<Storage>&)> storage_sink{};
  // When set, called once per distinct (op, target) of the graph's call_function,
  // call_method and call_module nodes, after the nodes are written: what a package's
  // manifest lists (manifest.hpp's required_items), without a second pass over the nodes.
  // `target` views the graph's own string: valid while the graph is not edited.
  std::function<void(Op op, std::string_view target)> on_call_target{};
};

// Bounds applied while loading untrusted bytes. Exceeding one is a FormatError.
struct LoadLimits {
  std::uint64_t max_nodes = 10'000'000;
  std::uint32_t max_nesting_depth = 64;       // nested list/tuple/dict/slice values, module tree depth
  std::uint64_t max_string_length = 1u << 24;  // bytes per string
  std::uint64_t max_tensor_bytes = 1ull << 32; // sum of all storage bytes
  std::uint64_t max_items = 10'000'000;        // elements of any one list/tuple/dict/table
};

struct LoadReport;

enum class SourceHashCheck : std::uint8_t {
  OnFirstCodegen,  // in the loaded module's first real recompile, on the source it generates
  AtLoad,          // during the load (generates the source once more); fills the LoadReport
  Off,
};

struct LoadOptions {
  LoadLimits limits{};
  // When to compare the stored hash with the same hash of the loaded graph (see "After
  // loading").
  SourceHashCheck source_hash_check = SourceHashCheck::OnFirstCodegen;
  // Raise FormatError instead of warning when the hashes differ.
  bool strict_source_hash = false;
  // Raise FormatError (listing all) instead of accepting unregistered call_module kinds.
  bool refuse_unregistered_module_kinds = false;
  // Receives every warning (hash mismatch, unregistered kinds). Null: print to stderr.
  // Under SourceHashCheck::OnFirstCodegen the loaded module keeps a copy, called by its first
  // recompile on a mismatch: what the hook refers to must outlive that.
  std::function<void(const std::string&)> on_warning{};
  // Resolves the storages of a pickle written with DumpOptions::storage_sink: the key and
  // the byte count the pickle expects (checked again against the result). A pickle with
  // such storages and no source is refused with FormatError. Exceptions it throws become
  // FormatError.
  std::function<std::shared_ptr<Storage>(const std::string& key, std::uint64_t nbytes)> storage_source{};
};

struct LoadReport {
  PickleFormat format = PickleFormat::PortableBinary;
  std::uint32_t format_version = 0;
  std::int64_t stored_codegen_version = 0;
  // The stored hash: content_hash(graph) from format 3 on, source_hash(python_code(graph))
  // in formats 1 and 2 (the names are format 1's).
  bool has_source_hash = false;
  std::uint64_t stored_source_hash = 0;
  // Set when the check ran at load (SourceHashCheck::AtLoad): the same hash of the loaded
  // graph, and the verdict.
  std::optional<std::uint64_t> rebuilt_source_hash;
  std::optional<bool> source_hash_matches;
  // Kinds of call_module targets that OpRegistry does not know (sorted, unique).
  std::vector<std::string> unregistered_module_kinds;
  std::vector<std::string> warnings;
};

struct Loaded {
  std::shared_ptr<GraphModule> module;  // always a LazyGraphModule, dirty
  LoadReport report;
};

// --- Saving. Throws fxpack::Error for a module that cannot be pickled (a node argument
// referencing a node of another graph). The binary formats are written in one pass over the
// nodes into one buffer; a thread keeps a small one (up to 1 MiB) for its next dumps and
// gives a larger one back when the dumps ends.
// The pickle as a byte string (std::string holds arbitrary bytes, including NULs).
std::string dumps(const GraphModule& module, PickleFormat format = PickleFormat::PortableBinary);
std::string dumps(const GraphModule& module, const DumpOptions& options);
void dump(const GraphModule& module, std::ostream& out,
          PickleFormat format = PickleFormat::PortableBinary);
void dump(const GraphModule& module, std::ostream& out, const DumpOptions& options);

// --- Loading. The format is detected from the header line. Throws only FormatError.
// A warning to `hook`, or without one as a line "fxpack: warning: ..." on stderr (the text
// made printable). What every loader does with a warning, now or deferred.
void emit_warning(const std::function<void(const std::string&)>& hook, const std::string& message);
std::shared_ptr<GraphModule> loads(std::string_view bytes, const LoadOptions& options = {});
Loaded loads_with_report(std::string_view bytes, const LoadOptions& options = {});
// Reads the stream to its end (at most `max_bytes`), then as loads().
std::shared_ptr<GraphModule> load(std::istream& in, const LoadOptions& options = {},
                                  std::uint64_t max_bytes = 1ull << 34);
Loaded load_with_report(std::istream& in, const LoadOptions& options = {},
                        std::uint64_t max_bytes = 1ull << 34);

// The format named by a pickle's header (FormatError if there is no valid header).
PickleFormat detect_format(std::string_view bytes);

// What a pickle's header line says (FormatError if there is no valid header; the checksum
// is not verified here).
struct PickleHeader {
  PickleFormat format = PickleFormat::PortableBinary;
  std::uint32_t version = 0;
  std::optional<std::uint32_t> crc32;  // format 2 on: the body's CRC-32
  std::size_t size = 0;                // bytes of the header line, newline included
};
PickleHeader read_header(std::string_view bytes);

}  // namespace fxpack::pickle
