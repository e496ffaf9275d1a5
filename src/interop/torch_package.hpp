// Loading real PyTorch torch.package archives of fx GraphModules, without Python and without
// running anything from the archive.
//
// Layout (torch 1.13, see ../shared/pytorch-reference/*/package_listing.txt):
//   <root>/.data/version, <root>/.data/extern_modules, <root>/.data/python_version
//   <root>/<package path>/<resource>        the pickle save_pickle() wrote (model/model.pkl)
//   <root>/fx-generated/_N.py               the source fx generated for forward
//   <root>/.data/<key>.storage              raw little-endian tensor storages
//
// The pickle's root is the persistent id ('reduce_package', id, reduce_package_graph_module,
// (body, 'fx-generated._N')). body is the GraphModule's __dict__: `_modules` holds the
// submodules (allowlisted torch.nn classes, rebuilt from their __dict__: `_parameters`,
// `_buffers`, `_modules` and the configuration attributes the nn:: factories set, then checked
// with the kind's ModuleKind::validate), `_graphmodule_cls_name` the class name. The graph is
// rebuilt by parsing fx-generated/_N.py (fx_code_parser.hpp), so code() reproduces it.
//
// Tensors come from ('storage', torch.FloatStorage, key, 'cpu', numel) persistent ids and
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter calls; only contiguous tensors are
// accepted. A STORE record whose data is 16-byte aligned in memory (PyTorch and ZipWriter put
// record data at multiples of 64 in the file) and whose size matches is aliased
// zero-copy (the tensor keeps the archive mapping alive, see ZipReader::owner()); otherwise
// the bytes are copied. A storage used by several tensors is shared after load.
//
// `training` flags are not kept: fxpack's leaf kinds compute as PyTorch does in eval() (a
// BatchNorm2d uses its running statistics), which is how the reference archives were saved.
//
// Every problem is an fxpack::FormatError naming the record (and module path or byte
// offset where that applies).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "fxpack/graph_module.hpp"
#include "interop/fx_code_parser.hpp"
#include "interop/unpickler.hpp"
#include "zip/zip_reader.hpp"
#include "zip/zip_writer.hpp"

namespace fxpack::interop {

struct TorchPackageOptions {
  bool copy_tensors = false;  // copy every storage instead of aliasing aligned STORE records
  bool verify_crc = true;     // check the CRC of aliased records (copies are always checked)
  UnpicklerLimits pickle_limits{};
  FxParseLimits code_limits{};
  std::size_t max_module_depth = 64;  // nesting of submodules and of attribute values
};

// True if the archive looks like a torch.package: every entry under one root folder, with
// <root>/.data/version and <root>/.data/extern_modules.
bool is_torch_package(const zip::ZipReader& zip);
// The root folder name ("package", "archive", ...); FormatError if not a torch.package.
std::string torch_package_root(const zip::ZipReader& zip);

// Loads the GraphModule pickled at <package>/<resource> ("model", "model.pkl") into a dirty
// LazyGraphModule whose class name is the one PyTorch recorded.
std::shared_ptr<GraphModule> load_torch_package(const zip::ZipReader& zip, std::string_view package,
                                                std::string_view resource,
                                                const TorchPackageOptions& options = {});

// ---- export --------------------------------------------------------------------------
//
// Writes `gm` as torch 1.13's PackageExporter(path).save_pickle(package, resource, gm) would:
// the same records in the same order (storages, the pickle, fx-generated/_0.py,
// .data/extern_modules, .data/python_version, .data/version) and a protocol 3 pickle whose
// opcodes and memo indexes are those Python's pickler emits for a GraphModule in eval mode
// (training False), so PyTorch's PackageImporter(...).load_pickle(package, resource) rebuilds
// it (reduce_package_graph_module, _rebuild_tensor_v2/_rebuild_parameter, torch.nn classes).
// Supported submodule kinds: the allowlisted leaf classes, Sequential and plain Module;
// anything else (a nested GraphModule, a user Module subclass, a tensor that is not
// contiguous or whose storage is shared between dtypes) is refused with an fxpack::Error.
// Deterministic: the object id PyTorch would record (id(gm)) is `object_id`.
struct TorchExportOptions {
  std::string root = "archive";          // the archive's root folder (PyTorch: the file's stem)
  std::string python_version = "3.11.2"; // written to .data/python_version
  std::uint64_t object_id = 0x7f0000000000;
};

// Adds the records to `zip` (call finish() afterwards).
void save_torch_package(zip::ZipWriter& zip, const GraphModule& gm, std::string_view package, std::string_view resource,
                        const TorchExportOptions& options = {});

}  // namespace fxpack::interop
