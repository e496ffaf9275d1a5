// Boost.Serialization archives of a pickle: text, binary and xml.
#include <iterator>
#include <sstream>
#include <string>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/archive/text_iarchive.hpp>
#include <boost/archive/text_oarchive.hpp>
#include <boost/archive/xml_iarchive.hpp>
#include <boost/archive/xml_oarchive.hpp>

#include "fxpack/detail/serialize.hpp"

namespace fxpack::pickle::detail {

void write_boost(std::ostream& out, const PickleRecord& record, PickleFormat format) {
  switch (format) {
    case PickleFormat::BoostText: {
      boost::archive::text_oarchive ar(out);
      ar << boost::serialization::make_nvp("fxpack_pickle", record);
      break;
    }
    case PickleFormat::BoostBinary: {
      boost::archive::binary_oarchive ar(out);
      ar << boost::serialization::make_nvp("fxpack_pickle", record);
      break;
    }
    case PickleFormat::BoostXml: {
      boost::archive::xml_oarchive ar(out);
      ar << boost::serialization::make_nvp("fxpack_pickle", record);
      break;
    }
    default: throw ValueError("write_boost: not a Boost format");
  }
}

void read_boost(std::istream& in, PickleRecord& record, PickleFormat format) {
  switch (format) {
    case PickleFormat::BoostText: {
      boost::archive::text_iarchive ar(in);
      ar >> boost::serialization::make_nvp("fxpack_pickle", record);
      break;
    }
    case PickleFormat::BoostBinary: {
      boost::archive::binary_iarchive ar(in);
      ar >> boost::serialization::make_nvp("fxpack_pickle", record);
      break;
    }
    case PickleFormat::BoostXml: {
      // xml_iarchive's destructor parses the closing </boost_serialization> tag and throws
      // from a destructor (std::terminate) when that tag is damaged. It skips that step
      // while an exception is in flight, so the archive is destroyed during unwinding and
      // the closing tag is checked here instead.
      struct Unwind {};
      try {
        boost::archive::xml_iarchive ar(in);
        ar >> nvp<boost::archive::xml_iarchive>("fxpack_pickle", record);
        throw Unwind{};
      } catch (const Unwind&) {
      }
      std::string rest{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      auto first = rest.find_first_not_of(" \t\r\n");
      auto last = rest.find_last_not_of(" \t\r\n");
      if (first == std::string::npos || rest.substr(first, last - first + 1) != "</boost_serialization>")
        load_context().fail("boost-xml archive does not end with </boost_serialization>");
      break;
    }
    default: throw ValueError("read_boost: not a Boost format");
  }
}

namespace {
template <class OArchive>
std::string header_of() {
  std::ostringstream out;
  {
    OArchive ar(out);
    return out.str();  // before the destructor adds any trailer
  }
}
}  // namespace

const std::string& boost_archive_header(PickleFormat format) {
  static const std::string text = header_of<boost::archive::text_oarchive>();
  static const std::string binary = header_of<boost::archive::binary_oarchive>();
  static const std::string xml = header_of<boost::archive::xml_oarchive>();
  switch (format) {
    case PickleFormat::BoostText: return text;
    case PickleFormat::BoostBinary: return binary;
    case PickleFormat::BoostXml: return xml;
    default: throw ValueError("boost_archive_header: not a Boost format");
  }
}

}  // namespace fxpack::pickle::detail
