// Loading real PyTorch torch.package archives of fx GraphModules, without Python and without
// running anything from the archive.
//
// Layout (torch 1.13, see ../shared/pytorch-reference/*/package_listing.txt; 2.x adds
// <root>/byteorder and <root>/.data/serialization_id):
//   <root>/.data/version, <root>/.data/extern_modules, <root>/.data/python_version
//   <root>/<package path>/<resource>        the pickle save_pickle() wrote (model/model.pkl)
//   <root>/fx-generated/_N.py               the source fx generated for forward
//   <root>/.data/<key>.storage              raw little-endian tensor storages
//
// The pickle's root is the persistent id ('reduce_package', id, reduce_package_graph_module,
// (body, 'fx-generated._N')). body is the GraphModule's __dict__: `_modules` holds the
// submodules (allowlisted torch.nn classes, rebuilt from their __dict__: `_parameters`,
// `_buffers`, `_modules` and the configuration attributes the nn:: factories set, then checked
// with the kind's ModuleKind::validate; any other torch.nn class is kept as data: kind = its
// qualified class name, attributes = the rest of its __dict__, None members as undefined
// tensors, so it prints, pickles and exports back but cannot run), `_graphmodule_cls_name`
// the class name. Module state may use OrderedDicts (1.13) or plain dicts and 2.x's extra hook
// fields (which must be empty). The graph is rebuilt by parsing fx-generated/_N.py
// (fx_code_parser.hpp) in the dialect of the PyTorch that wrote the archive, so code()
// reproduces PyTorch's.
//
// Tensors come from ('storage', torch.FloatStorage, key, 'cpu', numel) persistent ids (Float,
// Double, Long, Bool, Byte, Half, BFloat16, Int, Char and Short storages) and
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter / _rebuild_parameter_with_state (empty
// state) calls; a strided view (x.t(), x[:, 1]) is gathered into a contiguous storage of its
// own, every element checked to lie in the viewed storage. A STORE record whose data is
// 16-byte aligned in memory (PyTorch and ZipWriter put
// record data at multiples of 64 in the file) and whose size matches is aliased
// zero-copy (the tensor keeps the archive mapping alive, see ZipReader::owner()) and its CRC
// checked when the tensor's bytes are first used; otherwise the bytes are copied (and checked). A storage used by several tensors is shared after load.
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
#include <optional>
#include <string>
#include <string_view>

#include "fxpack/dialect.hpp"
#include "fxpack/graph_module.hpp"
#include "interop/fx_code_parser.hpp"
#include "interop/unpickler.hpp"
#include "zip/zip_reader.hpp"
#include "zip/zip_writer.hpp"

namespace fxpack::interop {

struct TorchPackageOptions {
  bool copy_tensors = false;  // copy every storage instead of aliasing aligned STORE records
  bool verify_crc = true;     // check the CRC of aliased records on first use (copies: always, when read)
  UnpicklerLimits pickle_limits{};
  FxParseLimits code_limits{};
  std::size_t max_module_depth = 64;  // nesting of submodules and of attribute values
};

// The `.data/version` values PyTorch's reader accepts (1.13 and 2.6 alike).
inline constexpr std::uint64_t kTorchPackageMinVersion = 1;
inline constexpr std::uint64_t kTorchPackageMaxVersion = 10;

// torch.nn.Module itself: the plain parents of submodules. Every other allowlisted class is a
// leaf module kind's (OpRegistry::module_class, from the op table's `classes`).
inline constexpr const char* kPlainModuleClass = "torch.nn.modules.module.Module";

// An attribute the module's kind declares `Callable` (a function held by its name): the
// importer reads and the exporter writes it as the function object itself.
bool is_callable_attribute(const Module& m, std::string_view name);

// True if the archive looks like a torch.package: every entry under one root folder, with
// <root>/.data/extern_modules.
bool is_torch_package(const zip::ZipReader& zip);
// The root folder name ("package", "archive", ...); FormatError if not a torch.package.
std::string torch_package_root(const zip::ZipReader& zip);
// Its `.data/version` (or legacy `version`) record, parsed as PyTorch parses it (leading
// space, a sign, digits; trailing text ignored); FormatError naming the record when it is
// missing, unreadable, or outside kTorchPackageMinVersion..kTorchPackageMaxVersion.
std::uint64_t torch_package_version(const zip::ZipReader& zip);
// The dialect of the PyTorch that wrote it: Torch2 when it has the `byteorder` or
// `.data/serialization_id` records PyTorch 2.x writes, Torch1_13 otherwise.
Dialect torch_package_dialect(const zip::ZipReader& zip);

// Loads the GraphModule pickled at <package>/<resource> ("model", "model.pkl") into a dirty
// LazyGraphModule whose class name is the one PyTorch recorded, its graph in the archive's
// dialect. Checks the version first.
std::shared_ptr<GraphModule> load_torch_package(const zip::ZipReader& zip, std::string_view package,
                                                std::string_view resource,
                                                const TorchPackageOptions& options = {});

// ---- export ---------------------------------------------------------------------------
//
// Writes `gm` as the target PyTorch's PackageExporter(path).save_pickle(package, resource, gm)
// would: the same records in the same order (storages, the pickle, fx-generated/_0.py,
// .data/extern_modules, .data/python_version, .data/version; 2.x adds byteorder and
// .data/serialization_id), the generated code in the target's dialect with its import block,
// and a protocol 3 pickle whose opcodes and memo indexes are those Python's pickler emits for
// a GraphModule in eval mode (training False; the plain Modules it makes for path parents
// True) under that PyTorch (1.13: OrderedDict members;
// 2.x: plain dicts, more hook fields, the GraphModule's _lineno_map and node hooks), so its
// PackageImporter(...).load_pickle(package, resource) rebuilds it
// (reduce_package_graph_module, _rebuild_tensor_v2/_rebuild_parameter, torch.nn classes).
// Supported submodule kinds: the allowlisted leaf classes, Sequential, plain Module and
// data-only torch.nn modules read from a torch.package; anything else (a nested GraphModule, a
// user Module subclass, a tensor that is not contiguous or whose storage is shared between
// dtypes) is refused with an fxpack::Error. Deterministic: the object id PyTorch would
// record (id(gm)) is `object_id`, and 2.x's serialization id is derived from the contents.
struct TorchExportOptions {
  Dialect version = Dialect::Torch1_13;    // the PyTorch to write for (Torch2: checked against 2.6)
  std::string root = "archive";            // the archive's root folder (PyTorch: the file's stem)
  // Written to .data/python_version; unset: "3.11.2" (Debian 12's) for 1.13, "3.13.5" (Debian 13's) for 2.x.
  std::optional<std::string> python_version;
  std::uint64_t object_id = 0x7f0000000000;
};

// Adds the records to `zip` (call finish() afterwards).
void save_torch_package(zip::ZipWriter& zip, const GraphModule& gm, std::string_view package, std::string_view resource,
                        const TorchExportOptions& options = {});

}  // namespace fxpack::interop
