#include "outputs.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <filesystem>

#include "cli.hpp"
#include "npy.hpp"

namespace fxpack::cli {

namespace {

class OutputWriter {
 public:
  explicit OutputWriter(std::filesystem::path dir) : dir_(std::move(dir)) {}

  void node(const Value& v, const std::string& where) {
    json_.StartObject();
    switch (v.kind()) {
      case Value::Kind::Tensor: tensor(v.tensor()); break;
      case Value::Kind::Tuple:
      case Value::Kind::List: {
        json_.Key(v.kind() == Value::Kind::Tuple ? "tuple" : "list");
        json_.StartArray();
        for (std::size_t i = 0; i < v.items().size(); ++i) node(v.items()[i], where + "[" + std::to_string(i) + "]");
        json_.EndArray();
        break;
      }
      case Value::Kind::Dict: {
        json_.Key("dict");
        json_.StartArray();
        for (const auto& [k, x] : v.dict().items) {
          json_.StartArray();
          json_.String(k.c_str(), static_cast<rapidjson::SizeType>(k.size()));
          node(x, where + "[" + python_str_repr(k) + "]");
          json_.EndArray();
        }
        json_.EndArray();
        break;
      }
      case Value::Kind::Int: json_.Key("int"); json_.Int64(v.to_int()); break;
      case Value::Kind::Bool: json_.Key("bool"); json_.Bool(v.to_bool()); break;
      case Value::Kind::None: json_.Key("none"); json_.Null(); break;
      case Value::Kind::String: {
        json_.Key("str");
        json_.String(v.str().c_str(), static_cast<rapidjson::SizeType>(v.str().size()));
        break;
      }
      case Value::Kind::Double: {
        const double d = v.to_double();
        json_.Key("float");
        if (std::isfinite(d)) json_.Double(d);
        else json_.String(std::isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
        break;
      }
      default:
        throw FormatError(where + ": cannot write a " + std::string(kind_name(v.kind())) + " output (" + python_repr(v) + ")");
    }
    json_.EndObject();
  }

  std::vector<std::string> finish() {
    std::string doc = R"({"format": "fxpack-outputs", "version": 1, "output": )" + std::string(buffer_.GetString()) + "}\n";
    std::string path = (dir_ / "outputs.json").string();
    write_file_atomic(path, doc);
    written_.push_back(path);
    return written_;
  }

 private:
  void tensor(const Tensor& t) {
    const std::string name = "output_" + std::to_string(count_++) + ".npy";
    const std::string dtype(dtype_name(t.dtype()));
    std::string path = (dir_ / name).string();
    write_file_atomic(path, to_npy(dtype == "bfloat16" ? t.to(DType::Float32) : t));
    written_.push_back(path);
    json_.Key("tensor");
    json_.String(name.c_str());
    json_.Key("dtype");
    json_.String(dtype.c_str());
    json_.Key("shape");
    json_.StartArray();
    for (std::int64_t d : t.shape()) json_.Int64(d);
    json_.EndArray();
  }

  std::filesystem::path dir_;
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> json_{buffer_};
  int count_ = 0;
  std::vector<std::string> written_;
};

}  // namespace

std::vector<std::string> write_outputs(const Value& output, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError("cannot create the output directory '" + dir + "': " + ec.message());
  OutputWriter w(dir);
  w.node(output, "output");
  return w.finish();
}

}  // namespace fxpack::cli
