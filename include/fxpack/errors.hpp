// fxpack errors.
//
// Every failure the library reports is an fxpack::Error (a std::runtime_error), so callers
// can catch one type. The message always says what is wrong and where: the record name,
// node name, op target, byte offset or line that the problem was found at. The subclasses
// let callers tell the broad kinds apart without parsing messages:
//
//   GraphError   — an ill-formed graph or a misuse of the graph API (erase a used node, lint)
//   OpError      — a kernel refused its inputs (dtype, shape, arity) or a target has no kernel
//   FormatError  — a pickle or package is corrupt, truncated, hostile or from a newer version
//   IoError      — the operating system refused a file operation
#pragma once

#include <stdexcept>
#include <string>

namespace fxpack {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class GraphError : public Error {
 public:
  using Error::Error;
};

class OpError : public Error {
 public:
  using Error::Error;
};

class FormatError : public Error {
 public:
  using Error::Error;
};

class IoError : public Error {
 public:
  using Error::Error;
};

}  // namespace fxpack
