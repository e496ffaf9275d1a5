// The binary pickle formats (portable-binary, boost-binary) written straight from the live
// objects into growing byte buffers: no PickleRecord, no per-field call through a stream,
// one pass over the nodes.
//
// The bytes are those the record templates of fxpack/detail/serialize.hpp give through
// cereal's PortableBinaryOutputArchive and Boost's binary_oarchive, byte for byte (both
// archives write the same record bytes after their own header: cereal one endianness byte,
// Boost its archive header); test_pickle compares the two for graphs holding every value
// kind. The records and the libraries remain the writers of the text formats (JSON, Boost
// text and xml) and the readers of every format.
//
// One pass over the nodes, although the archive holds the tables (storages, tensors, the
// module tree, the targets) before them and the nodes decide what the tables hold (targets
// and tensors by first use in node order, node tensors before the module tree's): the nodes
// are written once and the tables put in front of them. For a large graph, dumps writes the
// tables first, as they are when no node holds a tensor, keeps the target table's place at
// the size of every target the graph has used (Graph::targets_ever_used), and writes the
// nodes behind it into the string it returns, where for a traced or loaded graph they stay
// (otherwise they are moved once). A small graph's nodes, or any dumped with a storage sink
// or behind larger tables, go to a buffer of this thread's first and are copied behind the
// tables (~20 bytes a node). A package's record takes the nodes' buffer as a piece of its
// own (write_binary_pieces). The nodes' CRC-32 is taken as they are written or copied, 64 KiB
// at a time while in cache.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fxpack/pickle.hpp"

namespace fxpack::pickle::detail {

// The formats this writer writes (the others go through their libraries).
inline bool is_binary_format(PickleFormat f) { return f == PickleFormat::PortableBinary || f == PickleFormat::BoostBinary; }

// Appends the archive of `module` (everything after the pickle's header line) in
// `options.format`, which must be PortableBinary or BoostBinary, to `out`, and returns the
// CRC-32 of what it appended (the header line's checksum). Throws GraphError for a module
// that cannot be pickled (a node argument referencing a node of another graph, a module
// attribute holding a node).
[[nodiscard]] std::uint32_t write_binary(const GraphModule& module, const DumpOptions& options, std::string& out);

// The archive write_binary() appends, in the pieces the writer made it in rather than joined:
// the tables, the storages' own memory for storages written inline (no storage sink), and
// the nodes' buffer (most of a large graph's bytes). For a caller that copies the bytes
// where they go anyway (a package's zip entry): a 10^6-node graph's 19 MB are not first
// copied into a string of their own.
struct BinaryPieces {
  std::vector<std::string_view> pieces;  // in order, none empty: the archive is their concatenation
  // Keeps every piece alive. A storage written inline (no storage sink) is viewed in place,
  // not copied: its bytes must not change until the pieces have been read.
  std::shared_ptr<const void> owner;
  std::uint32_t crc = 0;                 // CRC-32 of the archive
};
[[nodiscard]] BinaryPieces write_binary_pieces(const GraphModule& module, const DumpOptions& options);

// DumpOptions::on_call_target from a writer's table of distinct targets and, per target, the
// ops of the nodes that used it (bit 1 << Op).
template <class Targets>
void report_call_targets(const Targets& targets, const std::vector<std::uint8_t>& ops,
                         const std::function<void(Op, std::string_view)>& hook) {
  if (!hook) return;
  for (std::size_t i = 0; i < targets.size(); ++i)
    for (Op op : {Op::CallFunction, Op::CallMethod, Op::CallModule})
      if (ops[i] & (1u << static_cast<unsigned>(op))) hook(op, targets[i]);
}

}  // namespace fxpack::pickle::detail
