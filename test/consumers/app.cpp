// The program every consumer project builds against an installed (or subproject) fxpack:
// loads a package PyTorch wrote, runs it on PyTorch's input, and compares with PyTorch's
// output. usage: consumer_app PACKAGE INPUT.bin OUTPUT.bin  (the reference MLP: 2x4 -> 2x3)
#include <fxpack/fxpack.hpp>

#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

namespace {
fxpack::Tensor read_floats(const char* path, fxpack::Shape shape) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!in.good() && !in.eof()) throw std::runtime_error(std::string("cannot read ") + path);
  return fxpack::Tensor::from_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())), shape,
                                    fxpack::DType::Float32);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: consumer_app PACKAGE INPUT.bin OUTPUT.bin\n";
    return 2;
  }
  try {
    fxpack::PackageImporter importer(argv[1]);
    auto model = importer.load_pickle("model", "model.pkl");
    fxpack::Tensor y = (*model)(read_floats(argv[2], {2, 4})).tensor();
    const double diff = fxpack::max_abs_diff(y, read_floats(argv[3], {2, 3}));
    std::cout << "fxpack " << fxpack::version() << ": max |fxpack - PyTorch| = " << diff << "\n";
    return diff <= 1e-5 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "consumer_app: " << e.what() << "\n";
    return 1;
  }
}
