// Python's reserved names and fx's name normalization (python_names.hpp).
#include "python_names.hpp"

#include <algorithm>
#include <array>
#include <unordered_map>
#include <unordered_set>

#include "fxpack/errors.hpp"
#include "fxpack/quote.hpp"

namespace fxpack::detail {

namespace {

constexpr std::array kKeywords = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
    "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if",
    "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try",
    "while", "with", "yield"};

constexpr std::array kBuiltins = {
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException",
    "BaseExceptionGroup", "BlockingIOError", "BrokenPipeError", "BufferError", "BytesWarning",
    "ChildProcessError", "ConnectionAbortedError", "ConnectionError", "ConnectionRefusedError",
    "ConnectionResetError", "DeprecationWarning", "EOFError", "Ellipsis", "EncodingWarning",
    "EnvironmentError", "Exception", "ExceptionGroup", "False", "FileExistsError",
    "FileNotFoundError", "FloatingPointError", "FutureWarning", "GeneratorExit", "IOError",
    "ImportError", "ImportWarning", "IndentationError", "IndexError", "InterruptedError",
    "IsADirectoryError", "KeyError", "KeyboardInterrupt", "LookupError", "MemoryError",
    "ModuleNotFoundError", "NameError", "None", "NotADirectoryError", "NotImplemented",
    "NotImplementedError", "OSError", "OverflowError", "PendingDeprecationWarning",
    "PermissionError", "ProcessLookupError", "RecursionError", "ReferenceError",
    "ResourceWarning", "RuntimeError", "RuntimeWarning", "StopAsyncIteration", "StopIteration",
    "SyntaxError", "SyntaxWarning", "SystemError", "SystemExit", "TabError", "TimeoutError",
    "True", "TypeError", "UnboundLocalError", "UnicodeDecodeError", "UnicodeEncodeError",
    "UnicodeError", "UnicodeTranslateError", "UnicodeWarning", "UserWarning", "ValueError",
    "Warning", "ZeroDivisionError", "__build_class__", "__debug__", "__doc__", "__import__",
    "__loader__", "__name__", "__package__", "__spec__", "abs", "aiter", "all", "anext", "any",
    "ascii", "bin", "bool", "breakpoint", "bytearray", "bytes", "callable", "chr", "classmethod",
    "compile", "complex", "copyright", "credits", "delattr", "dict", "dir", "divmod", "enumerate",
    "eval", "exec", "exit", "filter", "float", "format", "frozenset", "getattr", "globals",
    "hasattr", "hash", "help", "hex", "id", "input", "int", "isinstance", "issubclass", "iter",
    "len", "license", "list", "locals", "map", "max", "memoryview", "min", "next", "object", "oct",
    "open", "ord", "pow", "print", "property", "quit", "range", "repr", "reversed", "round", "set",
    "setattr", "slice", "sorted", "staticmethod", "str", "sum", "super", "tuple", "type", "vars",
    "zip"};

bool ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool is_python_keyword(std::string_view name) {
  static const std::unordered_set<std::string_view> s(kKeywords.begin(), kKeywords.end());
  return s.count(name) != 0;
}

bool is_python_builtin(std::string_view name) {
  static const std::unordered_set<std::string_view> s(kBuiltins.begin(), kBuiltins.end());
  return s.count(name) != 0;
}

bool is_reserved_name(std::string_view name) {
  // No keyword or builtin ends in a digit, and most node names do (`relu_3`): they skip the
  // hash lookup.
  if (!name.empty() && digit(name.back())) return false;
  static const std::unordered_set<std::string_view> s = [] {
    std::unordered_set<std::string_view> all(kKeywords.begin(), kKeywords.end());
    all.insert(kBuiltins.begin(), kBuiltins.end());
    for (const char* c : {"inf", "nan", "NoneType", "torch", "device", "fx_pytree", "pytree"}) all.insert(c);
    return all;
  }();
  return s.count(name) != 0;
}

std::string_view custom_builtin_object(std::string_view name) {
  static const std::unordered_map<std::string_view, std::string_view> m = {
      {"inf", "math.inf"},         {"nan", "math.nan"},       {"NoneType", "builtins.NoneType"},
      {"torch", "torch"},          {"device", "torch.device"}, {"fx_pytree", "torch.fx._pytree"},
      {"pytree", "torch.utils._pytree"}};
  auto it = m.find(name);
  return it == m.end() ? std::string_view() : it->second;
}

NameSuffix parse_name_suffix(std::string_view name) {
  NameSuffix x;
  const auto us = name.rfind('_');
  if (us == std::string_view::npos || us + 1 == name.size()) return x;
  const std::string_view digits = name.substr(us + 1);
  // (lambdas, not the functions themselves: a function pointer was called per character)
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return digit(c); })) return x;
  std::int64_t n = 0;
  for (char c : digits) {
    const int d = c - '0';
    if (n > (kMaxNameNumber - d) / 10) {
      x.kind = NameSuffix::Kind::TooLarge;
      return x;
    }
    n = n * 10 + d;
  }
  x.kind = NameSuffix::Kind::Number;
  x.base_size = us;
  x.number = n;
  x.canonical = digits.size() == 1 || digits[0] != '0';
  return x;
}

SplitName split_python_name(std::string_view raw) {
  SplitName s;
  if (!raw.empty() && !digit(raw[0]) && std::all_of(raw.begin(), raw.end(), [](char c) { return ident_char(c); })) {
    s.candidate.assign(raw);  // already normal: what loading and most tracing pass
  } else {
    s.candidate.reserve(raw.size() + 2);
    bool in_bad = false;
    for (char c : raw) {
      if (ident_char(c)) {
        s.candidate += c;
        in_bad = false;
      } else if (!in_bad) {
        s.candidate += '_';
        in_bad = true;
      }
    }
    if (s.candidate.empty()) s.candidate = "_unnamed";
    if (digit(s.candidate[0])) s.candidate.insert(0, 1, '_');
  }
  const NameSuffix x = parse_name_suffix(s.candidate);
  switch (x.kind) {
    case NameSuffix::Kind::None:
      s.base_size = s.candidate.size();
      break;
    case NameSuffix::Kind::TooLarge:
      throw GraphError("name " + quote(raw) + ": the number after its last '_' is above " +
                       std::to_string(kMaxNameNumber) + ", the largest a name can carry");
    case NameSuffix::Kind::Number:
      s.num = x.number;
      s.has_num = true;
      s.base_size = x.base_size;
      if (!x.canonical) {  // no leading zeros
        s.candidate.resize(x.base_size + 1);
        s.candidate += std::to_string(s.num);
      }
      break;
  }
  return s;
}

void throw_name_numbers_exhausted(const SplitName& s) {
  throw GraphError("cannot name " + quote(s.candidate) + ": it is taken, and the next number for its base " +
                   quote(s.base()) + " would be above " + std::to_string(kMaxNameNumber) +
                   ", the largest a name can carry");
}

}  // namespace fxpack::detail
