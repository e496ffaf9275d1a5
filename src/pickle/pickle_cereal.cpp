// cereal archives of a pickle: PortableBinary and JSON. Keep cereal/archives/json.hpp the
// first rapidjson user in this TU (it configures rapidjson through macros).
#include <cereal/archives/json.hpp>
#include <cereal/archives/portable_binary.hpp>

#include "fxpack/detail/serialize.hpp"

namespace fxpack::pickle::detail {

void write_cereal(std::ostream& out, const PickleRecord& record, PickleFormat format) {
  if (format == PickleFormat::Json) {
    cereal::JSONOutputArchive ar(out, cereal::JSONOutputArchive::Options(
                                          324, cereal::JSONOutputArchive::Options::IndentChar::space, 1));
    ar(cereal::make_nvp("fxpack_pickle", record));
  } else {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(record);
  }
}

void read_cereal(std::istream& in, PickleRecord& record, PickleFormat format) {
  if (format == PickleFormat::Json) {
    cereal::JSONInputArchive ar(in);
    ar(cereal::make_nvp("fxpack_pickle", record));
  } else {
    cereal::PortableBinaryInputArchive ar(in);
    ar(record);
  }
}

}  // namespace fxpack::pickle::detail
