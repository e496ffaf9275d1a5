// A pickle as a package's record (a zip entry): written in pieces, and loaded from a record
// whose CRC-32 its reader has checked.
//
// dumps_pieces(): dumps()'s bytes as the pieces they were made in (the header line, the
// tables, the nodes' buffer; for a text format, the one string), not joined: the zip writer
// copies them into the archive anyway, and a 10^6-node graph's 19 MB joined first cost a
// copy into fresh memory of its own.
//
// loads_checked_record(): the pickle's header carries the CRC-32 of its body, which loads()
// would compute with a second pass over the bytes; here it is derived from the record's
// instead: CRC-32 is linear, so crc(header + body) = crc32_combine(crc(header), 0, |body|) xor
// crc(body), and only the header line (under 64 bytes) is read for it. The check, and its
// message, are loads()'s own.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "fxpack/pickle.hpp"

namespace fxpack::pickle::detail {

struct PicklePieces {
  std::vector<std::string_view> pieces;  // in order: their concatenation is what dumps() returns
  std::shared_ptr<const void> owner;     // keeps every piece alive (see BinaryPieces::owner)
};
// dumps(module, options), in pieces.
PicklePieces dumps_pieces(const GraphModule& module, const DumpOptions& options);

// `record_crc32` must be the CRC-32 of exactly `bytes`, checked by the caller against
// the record's stored CRC before the call.
Loaded loads_checked_record(std::string_view bytes, std::uint32_t record_crc32, const LoadOptions& options);

}  // namespace fxpack::pickle::detail
