// The manifest of an fxpack package: what each pickle in it needs from the OpRegistry, so
// that a build can refuse a package it cannot run before building anything from it
// (torch.package's extern check, without running code).
//
// == The record ==
//
// <root>/.data/manifest is text, one item per line, each line ending in '\n':
//
//   fxpack.manifest 1
//   pickle <record> <pickle format version>    a pickle below the root, e.g. model/model.pkl
//   function <target>                          a call_function target its graph uses
//   method <name>                              a call_method name
//   module <kind>                              a call_module kind (leaf module class)
//
// The items after a `pickle` line belong to that pickle; the exporter writes pickles sorted by
// record and each pickle's items sorted. The record name is everything between the first and
// the last space of its line (names may hold spaces); the version is a decimal number.
//
// Manifest::parse is the one reader of this record: PackageImporter uses it when opening a
// package, and so does every tool that shows or checks a manifest. Anything malformed is a
// FormatError naming the line (the text quoted, see quote.hpp).
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fxpack {

class GraphModule;
enum class Op : std::uint8_t;  // node.hpp

struct Manifest {
  struct Pickle {
    std::string record;
    std::uint32_t format_version = 0;
    std::vector<std::string> items;  // "function torch.relu", "method view", "module Linear"
    bool operator==(const Pickle&) const = default;
  };
  std::vector<Pickle> pickles;

  static Manifest parse(std::string_view text);
  // The record's text: parse(m.to_string()) == m.
  std::string to_string() const;
  const Pickle* find(std::string_view record) const noexcept;
  // What this build lacks, one line each: "<item> (for <record>)" for an item it does not
  // provide, "pickle format version <N> (for <record>; this build reads up to <M>)" for a
  // pickle newer than it reads. Empty when the package can be loaded and run.
  std::vector<std::string> unmet_requirements() const;

  bool operator==(const Manifest&) const = default;
};

// The manifest items a module needs from the OpRegistry: "function <target>",
// "method <name>", "module <kind>" (kind "?" for a call_module target that is missing).
std::set<std::string> required_items(const GraphModule& module);
// The same from the distinct (op, target) pairs of the module's call nodes, as
// pickle::DumpOptions::on_call_target reports them while a pickle is written (the exporter's
// way: no second pass over the nodes).
std::set<std::string> required_items(const GraphModule& module,
                                     std::span<const std::pair<Op, std::string_view>> call_targets);
// True if this build provides a manifest item.
bool provides(std::string_view item);

}  // namespace fxpack
