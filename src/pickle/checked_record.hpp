// loads() of a pickle held in a record whose CRC-32 as a whole its reader has already checked
// (a package's zip record). The pickle's header carries the CRC-32 of its body, which loads()
// would compute with a second pass over the bytes; here it is derived from the record's
// instead: CRC-32 is linear, so crc(header + body) = crc32_combine(crc(header), 0, |body|) xor
// crc(body), and only the header line (under 64 bytes) is read for it. The check, and its
// message, are loads()'s own.
#pragma once

#include <cstdint>
#include <string_view>

#include "fxpack/pickle.hpp"

namespace fxpack::pickle::detail {

// `record_crc32` must be the CRC-32 of exactly `bytes`, checked by the caller against
// the record's stored CRC before the call.
Loaded loads_checked_record(std::string_view bytes, std::uint32_t record_crc32, const LoadOptions& options);

}  // namespace fxpack::pickle::detail
