// Graph IR: naming, users bookkeeping, editing, lint and dead-code elimination.
#include <doctest/doctest.h>

#include <set>

#include "block_cache.hpp"
#include "fxpack/detail/name_table.hpp"
#include "fxpack/fxpack.hpp"
#include "kept_memory.hpp"
#include "python_names.hpp"

using namespace fxpack;

namespace {
// A node list (users(), input_nodes()) as a vector, to compare.
std::vector<Node*> nodes_of(std::span<Node* const> s) { return {s.begin(), s.end()}; }
}  // namespace

TEST_CASE("graph: names follow fx rules") {
  Graph g;
  Node* x = g.placeholder("x");
  CHECK(g.call_method("sin", {x})->name() == "sin");
  CHECK(g.call_method("sin", {x})->name() == "sin_1");
  CHECK(g.call_method("sin", {x})->name() == "sin_2");
  // keywords, builtins and fx's reserved names take a suffix
  CHECK(g.create_node(Op::CallFunction, "torch.sum", {x})->name() == "sum_1");
  CHECK(g.create_node(Op::CallFunction, "builtins.getattr", {x, "shape"})->name() == "getattr_1");
  CHECK(g.create_node(Op::CallMethod, "max", {x})->name() == "max_1");
  CHECK(g.create_node(Op::CallFunction, "x.lambda", {x})->name() == "lambda_1");
  CHECK(g.create_node(Op::CallFunction, "foo.torch", {x})->name() == "torch_1");
  CHECK(g.create_node(Op::CallFunction, "foo.inf", {x})->name() == "inf_1");
  // snake case, illegal characters, leading digits, magic names, aten packets
  CHECK(g.call_module("layers.0", {x})->name() == "layers_0");
  CHECK(g.call_module("0", {x})->name() == "_0");
  CHECK(g.call_module("myModule", {x})->name() == "my_module");
  CHECK(g.call_method("__add__", {x, 1})->name() == "add");
  CHECK(g.call_function("torch.ops.aten.relu_.default", {x})->name() == "relu_");
  CHECK(g.call_function("torch.ops.aten.relu_.default", {x})->name() == "relu__1");
  CHECK(g.call_function("operator.add", {x, 1})->name() == "add_1");
  // an explicit numbered candidate keeps its number; then 1.13 takes the smallest free
  // suffix, 2.x counts on from the base's last one (as real fx does: relu_5, relu, relu_6)
  CHECK(g.dialect() == Dialect::Torch1_13);
  CHECK(g.create_node(Op::CallFunction, "operator.mul", {x, 2}, {}, std::string("mul_5"))->name() == "mul_5");
  CHECK(g.call_function("operator.mul", {x, 2})->name() == "mul");
  CHECK(g.call_function("operator.mul", {x, 2})->name() == "mul_1");
  Graph g2(Dialect::Torch2);
  Node* y = g2.placeholder("y");
  CHECK(g2.create_node(Op::CallFunction, "operator.mul", {y, 2}, {}, std::string("mul_5"))->name() == "mul_5");
  CHECK(g2.call_function("operator.mul", {y, 2})->name() == "mul");
  CHECK(g2.call_function("operator.mul", {y, 2})->name() == "mul_6");
  CHECK(is_reserved_python_name("print"));
  CHECK_FALSE(is_reserved_python_name("relu"));
}

TEST_CASE("graph: requested names that clash take the suffix real fx gives them, in both dialects") {
  // Each list was printed by torch.fx's _Namespace.create_name, fed the requests in order
  // (PyTorch 1.13 and 2.6): user names like add_1 before add, a name asked for twice, numbers
  // far beyond the others (x_1000000), leading zeros (sin_01) and suffix 0.
  const std::vector<std::string> asked = {"add_1",     "add",      "add", "add_1", "add_5",     "add",
                                          "add_3",     "add",      "x_1000000", "x_999999", "x", "x",
                                          "x_1000000", "sin_01",   "sin", "sin_0", "sin_0",     "sin"};
  const std::vector<std::string> torch_1_13 = {"add_1",     "add",   "add_2", "add_3",    "add_5",     "add_4",
                                               "add_6",     "add_7", "x_1000000", "x_999999", "x",   "x_1",
                                               "x_1000001", "sin_1", "sin",   "sin_0",    "sin_2",     "sin_3"};
  const std::vector<std::string> torch_2 = {"add_1",     "add",       "add_2", "add_3",    "add_5",     "add_6",
                                            "add_4",     "add_7",     "x_1000000", "x_999999", "x",   "x_1000001",
                                            "x_1000002", "sin_1",     "sin",   "sin_0",    "sin_2",     "sin_3"};
  for (Dialect d : {Dialect::Torch1_13, Dialect::Torch2}) {
    CAPTURE(dialect_name(d));
    Graph g(d);
    const auto& expected = d == Dialect::Torch2 ? torch_2 : torch_1_13;
    std::vector<Node*> made;
    for (std::size_t i = 0; i < asked.size(); ++i) {
      CAPTURE(asked[i]);
      made.push_back(g.create_node(Op::Placeholder, "p", {}, {}, asked[i]));
      CHECK(made.back()->name() == expected[i]);
    }
    for (Node* n : made) CHECK(g.find_node(n->name()) == n);
    // Names the rules never give find nothing; an erased node's name stays taken.
    CHECK(g.find_node("sin_01") == nullptr);
    CHECK(g.find_node("x_2") == nullptr);
    g.erase_node(made[8]);  // x_1000000
    CHECK(g.find_node("x_1000000") == nullptr);
    CHECK(g.create_node(Op::Placeholder, "p", {}, {}, std::string("x_1000000"))->name() != "x_1000000");
    CHECK(g.unique_name("add_7") != "add_7");
  }
}

TEST_CASE("graph: names far beyond their base's others, then the numbers between them") {
  // A number far beyond the dense range is kept aside, then moves in when the range reaches it.
  Graph g;
  std::vector<Node*> nodes;
  nodes.push_back(g.create_node(Op::Placeholder, "p", {}, {}, std::string("v_300")));
  for (int i = 0; i < 400; ++i) nodes.push_back(g.create_node(Op::Placeholder, "p", {}, {}, std::string("v")));
  std::set<std::string> names;
  for (Node* n : nodes) {
    CHECK(names.insert(n->name()).second);
    CHECK(g.find_node(n->name()) == n);
  }
  CHECK(nodes[0]->name() == "v_300");
  CHECK(nodes[301]->name() == "v_301");  // v, v_1 .. v_299, then v_300 is taken
}

TEST_CASE("graph: numbers each past twice the last (x_64, x_194, x_454, ...) cost a slot each, not an array up to the largest") {
  // What a hostile archive can ask for: each number is beyond the dense range the one before
  // would have opened (2k + 66), up to the largest number a name can carry. An array reaching
  // the 22nd would hold 2.7e8 slots (2.2 GB), the 27th 70 GB.
  std::vector<std::string> asked;
  std::vector<std::int64_t> numbers{64};
  while (numbers.back() <= (detail::kMaxNameNumber - 66) / 2) numbers.push_back(2 * numbers.back() + 66);
  for (std::int64_t n : numbers) asked.push_back("x_" + std::to_string(n));
  REQUIRE(numbers.size() == 56);
  for (Dialect d : {Dialect::Torch1_13, Dialect::Torch2}) {
    CAPTURE(dialect_name(d));
    // The table holds at most twice the numbered names it was given, and 64 more per base.
    detail::NameTable table;
    for (std::size_t i = 0; i < asked.size(); ++i) {
      CAPTURE(asked[i]);
      CHECK(table.claim(asked[i], d).name == asked[i]);
      REQUIRE(table.numbered_slots() <= 2 * (i + 1) + 64);
    }
    const std::size_t before = table.numbered_slots();
    for (int i = 0; i < 1000; ++i) table.claim("x", d);  // and so it stays
    CHECK(table.numbered_slots() <= before + 2 * 1000);
    // A graph keeps each name as asked, finds it, and its rules go on as before.
    Graph g(d);
    std::vector<Node*> made;
    for (const std::string& name : asked) made.push_back(g.create_node(Op::Placeholder, "p", {}, {}, name));
    for (std::size_t i = 0; i < asked.size(); ++i) {
      CHECK(made[i]->name() == asked[i]);
      CHECK(g.find_node(asked[i]) == made[i]);
    }
    CHECK(g.find_node("x_65") == nullptr);
    CHECK(g.create_node(Op::Placeholder, "p", {}, {}, std::string("x"))->name() == "x");
    // 1.13 takes the smallest free number; 2.x counts on from the last one given.
    CHECK(g.create_node(Op::Placeholder, "p", {}, {}, std::string("x"))->name() ==
          (d == Dialect::Torch2 ? "x_" + std::to_string(numbers.back() + 1) : std::string("x_1")));
    CHECK(g.create_node(Op::Placeholder, "p", {}, {}, std::string("x_64"))->name() == "x_65");
    Value v = g.create_node(Op::Placeholder, "p", {}, {}, std::string("y"));
    for (int i = 0; i < 1000; ++i) v = g.call_method("sin", {v});
    CHECK(v.node()->name() == "sin_999");
  }
}

TEST_CASE("graph: 19-digit numbers key as they are spelled; a name never belongs to two nodes") {
  // fx's 1.13 and 2.x alike: the second x_999999999999999999 becomes x_1000000000000000000,
  // so a third asking for that name takes the next one (the name must not be read back as a
  // base of its own).
  for (Dialect d : {Dialect::Torch1_13, Dialect::Torch2}) {
    CAPTURE(dialect_name(d));
    Graph g(d);
    const std::vector<std::string> asked = {"x_999999999999999999", "x_999999999999999999", "x_1000000000000000000"};
    const std::vector<std::string> expected = {"x_999999999999999999", "x_1000000000000000000", "x_1000000000000000001"};
    std::vector<Node*> made;
    for (const std::string& a : asked) made.push_back(g.create_node(Op::Placeholder, "p", {}, {}, a));
    for (std::size_t i = 0; i < made.size(); ++i) {
      CHECK(made[i]->name() == expected[i]);
      CHECK(g.find_node(expected[i]) == made[i]);
    }
    // Erasing one node leaves every other node's name to it.
    g.erase_node(made[1]);
    CHECK(g.find_node("x_1000000000000000000") == nullptr);
    CHECK(g.find_node("x_999999999999999999") == made[0]);
    CHECK(g.find_node("x_1000000000000000001") == made[2]);
    CHECK(g.create_node(Op::Placeholder, "p", {}, {}, std::string("x_1000000000000000000"))->name() == "x_1000000000000000002");
  }
}

TEST_CASE("graph: at the int64 edge a name is a GraphError quoting it, never a wrapped number") {
  const std::string edge = "x_9223372036854775807";  // 2^63 - 1
  for (Dialect d : {Dialect::Torch1_13, Dialect::Torch2}) {
    CAPTURE(dialect_name(d));
    Graph g(d);
    Node* top = g.create_node(Op::Placeholder, "p", {}, {}, edge);
    CHECK(top->name() == edge);
    CHECK(g.find_node(edge) == top);
    // Taken, and no number above it to give.
    CHECK_THROWS_WITH_AS(g.create_node(Op::Placeholder, "p", {}, {}, edge),
                         doctest::Contains("cannot name 'x_9223372036854775807': it is taken, and the next number for its base 'x' would be above 9223372036854775807"),
                         GraphError);
    CHECK_THROWS_WITH_AS(g.unique_name("x_9223372036854775808"),
                         doctest::Contains("name 'x_9223372036854775808': the number after its last '_' is above 9223372036854775807"),
                         GraphError);
    CHECK_THROWS_AS(g.create_node(Op::Placeholder, "p", {}, {}, std::string("a.b_99999999999999999999")), GraphError);
    CHECK(g.find_node("x_9223372036854775808") == nullptr);
    CHECK(g.find_node("x_99999999999999999999") == nullptr);
    // The refusals took nothing: the graph names on as before.
    CHECK(g.size() == 1);
    CHECK(g.create_node(Op::Placeholder, "p", {}, {}, std::string("x"))->name() == "x");
    if (d == Dialect::Torch2) {  // 2.x counts on from x_9223372036854775807: there is nothing after it
      CHECK_THROWS_WITH_AS(g.create_node(Op::Placeholder, "p", {}, {}, std::string("x")),
                           doctest::Contains("cannot name 'x': it is taken"), GraphError);
    } else {
      CHECK(g.create_node(Op::Placeholder, "p", {}, {}, std::string("x"))->name() == "x_1");
    }
    // A requested number just below the edge still gets the last one.
    CHECK(g.create_node(Op::Placeholder, "p", {}, {}, std::string("y_9223372036854775806"))->name() == "y_9223372036854775806");
    CHECK(g.create_node(Op::Placeholder, "p", {}, {}, std::string("y_9223372036854775806"))->name() == "y_9223372036854775807");
    CHECK_THROWS_AS(g.create_node(Op::Placeholder, "p", {}, {}, std::string("y_9223372036854775806")), GraphError);
  }
}

TEST_CASE("graph: one reading of a name's number, for names made and names looked up") {
  using detail::NameSuffix;
  using detail::parse_name_suffix;
  using BaseAndNumber = std::pair<std::string_view, std::int64_t>;
  auto number = [](std::string_view name) {
    NameSuffix x = parse_name_suffix(name);
    REQUIRE(x.kind == NameSuffix::Kind::Number);
    return BaseAndNumber(name.substr(0, x.base_size), x.number);
  };
  CHECK(number("relu_2") == BaseAndNumber("relu", 2));
  CHECK(number("a_b_0") == BaseAndNumber("a_b", 0));
  CHECK(number("_7") == BaseAndNumber("", 7));
  CHECK(number("x_1000000000000000000").second == 1000000000000000000);
  CHECK(number("x_9223372036854775807").second == detail::kMaxNameNumber);
  CHECK(number("x_00000000000000000000000009").second == 9);  // leading zeros: any count
  CHECK_FALSE(parse_name_suffix("x_00000000000000000000000009").canonical);
  CHECK_FALSE(parse_name_suffix("x_01").canonical);
  CHECK(parse_name_suffix("x_0").canonical);
  CHECK(parse_name_suffix("x_10").canonical);
  for (const char* none : {"relu", "relu_", "relu_2a", "_", "", "2"}) {
    CAPTURE(none);
    CHECK(parse_name_suffix(none).kind == NameSuffix::Kind::None);
  }
  CHECK(parse_name_suffix("x_9223372036854775808").kind == NameSuffix::Kind::TooLarge);
  CHECK(parse_name_suffix("x_18446744073709551616").kind == NameSuffix::Kind::TooLarge);
  // Names being made read the same number, spelled without leading zeros.
  const detail::SplitName s = detail::split_python_name("x_0001000000000000000000");
  CHECK(s.candidate == "x_1000000000000000000");
  CHECK(s.base() == "x");
  CHECK(s.num == 1000000000000000000);
  CHECK_THROWS_AS(detail::split_python_name("x_9223372036854775808"), GraphError);
}

TEST_CASE("graph: releasing a name clears it only for the node that has it") {
  Graph g;
  Node* a = g.placeholder("a");
  Node* b = g.placeholder("b");
  detail::NameTable table;
  *table.claim("x_5", Dialect::Torch1_13).node = a;
  *table.claim("y", Dialect::Torch1_13).node = a;
  table.release("x_5", b);  // b never had it
  table.release("y", b);
  CHECK(table.find("x_5") == a);
  CHECK(table.find("y") == a);
  table.release("x_5", a);
  table.release("y", a);
  CHECK(table.find("x_5") == nullptr);
  CHECK(table.find("y") == nullptr);
  // Released names stay taken.
  CHECK(table.claim("x_5", Dialect::Torch1_13).name == "x_6");
  CHECK(table.claim("y", Dialect::Torch1_13).name == "y_1");
}

TEST_CASE("graph: naming is O(1) per node (a long chain names quickly and uniquely)") {
  Graph g;
  Value v = g.placeholder("x");
  for (int i = 0; i < 100000; ++i) v = g.call_method("sin", {v});
  CHECK(v.node()->name() == "sin_99999");
  CHECK(g.size() == 100001);
}

TEST_CASE("graph: users follow args automatically") {
  Graph g;
  Node* x = g.placeholder("x");
  Node* y = g.placeholder("y");
  Node* add = g.call_function("operator.add", {x, x});
  CHECK(nodes_of(x->users()) == std::vector<Node*>{add});
  CHECK(nodes_of(add->input_nodes()) == std::vector<Node*>{x});
  add->set_arg(1, y);
  CHECK(nodes_of(y->users()) == std::vector<Node*>{add});
  CHECK(nodes_of(x->users()) == std::vector<Node*>{add});
  add->set_args({y, List{{y, 2}}});
  CHECK(x->users().empty());
  CHECK(nodes_of(add->input_nodes()) == std::vector<Node*>{y});
  add->set_kwargs(Dict{{{"alpha", x}}});
  CHECK(nodes_of(x->users()) == std::vector<Node*>{add});
  auto changed = x->replace_all_uses_with(y);
  CHECK(changed == std::vector<Node*>{add});
  CHECK(x->users().empty());
  CHECK(add->kwargs().items[0].second.node() == y);
}

TEST_CASE("graph: a node with many users and inputs keeps them in order as they change") {
  // Lists hold one entry inline and move to the heap past it (detail/node_list.hpp).
  Graph g;
  Node* x = g.placeholder("x");
  std::vector<Node*> users;
  for (int i = 0; i < 9; ++i) users.push_back(g.call_method("sin", {x}));
  CHECK(nodes_of(x->users()) == users);
  std::vector<Value> all(users.begin(), users.end());
  Node* cat = g.call_function("torch.cat", {List{all}});
  CHECK(nodes_of(cat->input_nodes()) == users);
  cat->set_args({List{{users[8], users[0], users[8]}}});  // each input once, first occurrence order
  CHECK(nodes_of(cat->input_nodes()) == std::vector<Node*>{users[8], users[0]});
  CHECK(users[3]->users().empty());
  g.erase_node(users[3]);
  users.erase(users.begin() + 3);
  CHECK(nodes_of(x->users()) == users);
  g.output(cat);
  g.lint();
}

TEST_CASE("graph: argument lists are runs of the graph's arena, reused by length; lists empty out and refill") {
  // detail/value_arena.hpp: a run given back serves the next run of its length.
  Graph g;
  Node* x = g.placeholder("x");
  Node* a = g.call_function("torch.relu", {Value(x)});
  const Value* run_of_one = a->args().data();
  a->set_args({Value(x), Value(2.0)});  // a new run of two; the run of one is free
  CHECK(a->args().size() == 2);
  CHECK(a->args()[1] == Value(2.0));
  Node* b = g.call_function("torch.sin", {Value(x)});
  CHECK(b->args().data() == run_of_one);
  const Value* run_of_two = a->args().data();
  a->set_args({Value(b), Value(3.0)});  // same length: the same run, edited in place
  CHECK(a->args().data() == run_of_two);
  CHECK(nodes_of(a->input_nodes()) == std::vector<Node*>{b});
  CHECK(nodes_of(x->users()) == std::vector<Node*>{b});
  g.erase_node(a);  // its run of two is free
  Node* c = g.call_function("operator.add", {Value(b), Value(b)});
  CHECK(c->args().data() == run_of_two);
  c->set_args({});  // no arguments: no run
  CHECK(c->args().empty());
  CHECK(b->users().empty());
  // A user list past one entry (a heap block) that empties out is empty, and refills.
  std::vector<Node*> users;
  for (int i = 0; i < 5; ++i) users.push_back(g.call_method("cos", {Value(b)}));
  for (Node* u : users) g.erase_node(u);
  CHECK(b->users().empty());
  CHECK(b->users().size() == 0);
  Node* d = g.call_method("cos", {Value(b)});
  CHECK(nodes_of(b->users()) == std::vector<Node*>{d});
  g.output(Tuple{{Value(d), Value(c)}});
  g.lint();
}

TEST_CASE("graph: a list whose length keeps changing reuses the arena by size class; a long run is freed") {
  // detail/value_arena.hpp: runs round up to a size class and any length in the class reuses
  // a freed run, so a node whose list goes through every length from 1 to 4000 and back leaves
  // the arena holding about one run per class, not every length it ever had (which was 128 MB);
  // a run past kLargeRunValues is its own heap block, given back when the list shrinks.
  using detail::ValueArena;
  Graph g;
  Node* x = g.placeholder("x");
  Node* cat = g.call_function("torch.cat", {Value(x)});
  const ValueArena& arena = g.argument_arena();
  const auto list_of = [](std::size_t n) { return std::vector<Value>(n, Value(1.0)); };
  std::size_t peak = 0;
  for (std::size_t n = 1; n <= 4000; ++n) {
    cat->set_args(list_of(n));
    peak = std::max(peak, arena.reserved_bytes());
  }
  CHECK(arena.used_bytes() == 4000 * sizeof(Value));  // the live run, exactly its length
  CHECK(arena.reserved_bytes() - arena.used_bytes() <= 8 * ValueArena::kLargeRunValues * sizeof(Value));
  CHECK(peak <= 4001 * sizeof(Value) + 8 * ValueArena::kLargeRunValues * sizeof(Value));
  cat->set_args(list_of(1));
  CHECK(cat->args().size() == 1);
  CHECK(arena.used_bytes() == sizeof(Value));
  // The long run went back to the system; the chunks hold one run of each class (2050 Values).
  const std::size_t small = arena.reserved_bytes();
  CHECK(small <= 8 * ValueArena::kLargeRunValues * sizeof(Value));
  // Any length of a class reuses its freed run: lengths 5 to 8 share one, 513 to 1024 another.
  for (std::size_t n : {5, 8, 6, 7, 513, 1024, 700, 3, 2, 4}) {
    cat->set_args(list_of(n));
    CHECK(cat->args().size() == n);
  }
  CHECK(arena.reserved_bytes() == small);
  // Another node's list fills a freed run of its class (cat's 700 went back when it took 3).
  Node* stack = g.call_function("torch.stack", list_of(600));
  CHECK(arena.reserved_bytes() == small);
  g.erase_node(stack);
  cat->set_args({Value(x)});
  g.output(cat);
  g.lint();
}

TEST_CASE("graph: a dead graph's large chunks are kept for the next graph, within a bound") {
  // detail/graph_chunk.hpp: a chunk of 64 KiB or more goes back to the process's cache of
  // its use when the graph dies, and the next graph of its size takes the same block.
  using detail::BlockCache;
  BlockCache& nodes = BlockCache::for_graph_nodes();
  BlockCache& arguments = BlockCache::for_graph_arguments();
  detail::release_kept_memory();
  const auto chain = [](Graph& g, int n) {
    g.reserve(static_cast<std::size_t>(n));
    Node* y = g.placeholder("x");
    for (int i = 0; i < n; ++i) y = g.call_function("torch.relu", {Value(y), Value(i)});
    g.output(y);
    return *g.begin();
  };
  const Node* first_place;
  {
    Graph g;
    first_place = chain(g, 3000);  // 3000 nodes: a 512 KiB node chunk, a 128 KiB argument chunk
    CHECK(g.argument_arena().reserved_bytes() == 128 << 10);
  }
  CHECK(nodes.cached_bytes() == 512 << 10);
  CHECK(arguments.cached_bytes() == 128 << 10);
  {
    Graph g;
    CHECK(chain(g, 3000) == first_place);  // the same pages
    CHECK(nodes.cached_bytes() == 0);
    CHECK(arguments.cached_bytes() == 0);
  }
  {
    Graph small;  // chunks under 64 KiB go back to the C library
    chain(small, 100);
  }
  CHECK(nodes.cached_bytes() == 512 << 10);
  CHECK(arguments.cached_bytes() == 128 << 10);
  // Beyond the bound the oldest kept chunks are freed: graphs that each hold one 8 MiB node
  // chunk (reserve asks for 2^16 nodes; one node touches one page of it).
  {
    std::vector<Graph> graphs(BlockCache::kGraphNodeCacheBytes / (8 << 20) + 2);
    for (Graph& g : graphs) {
      g.reserve(1 << 16);
      g.placeholder("x");
    }
  }
  CHECK(nodes.cached_bytes() == BlockCache::kGraphNodeCacheBytes);
  // A loaded graph reserves its nodes: a first chunk of the 8 MiB class (40,000 nodes ask for
  // 4.8 MB; it holds 69,905), then 512 KiB chunks. Given back newest first, the large one is
  // what the cache keeps, and the next graph reserving as much takes it.
  static_assert(BlockCache::kGraphNodeCacheBytes == std::size_t{8} << 20);
  detail::release_kept_memory();
  const Node* reserved_place;
  {
    Graph g;
    g.reserve(40000);
    Node* y = g.placeholder("x");
    reserved_place = y;
    for (int i = 0; i < 80000; ++i) y = g.call_function("torch.relu", {Value(y)});
  }
  CHECK(nodes.cached_bytes() == std::size_t{8} << 20);
  {
    Graph g;
    g.reserve(40000);
    CHECK(g.placeholder("x") == reserved_place);
  }
  detail::release_kept_memory();
  CHECK(nodes.cached_bytes() == 0);
  CHECK(arguments.cached_bytes() == 0);
}

TEST_CASE("graph: targets and types are the graph's strings; a copy has its own") {
  auto g = std::make_unique<Graph>();
  Node* x = g->placeholder("x");
  x->set_type("torch.Tensor");
  Node* a = g->call_function("torch.relu", {x});
  Node* b = g->call_function("torch.relu", {a});
  CHECK(&a->target() == &b->target());  // interned once
  b->set_target("torch.sigmoid");
  CHECK(a->target() == "torch.relu");
  CHECK(b->target() == "torch.sigmoid");
  CHECK(a->type().empty());
  b->set_type("torch.Tensor");
  CHECK(&b->type() == &x->type());
  b->set_type("");
  CHECK(b->type().empty());
  g->output(b);
  auto copy = g->clone();
  g.reset();  // the copy's strings must not point into the original
  const Node* cx = copy->find_node("x");
  REQUIRE(cx);
  CHECK(cx->type() == "torch.Tensor");
  CHECK(copy->find_node("relu_1")->target() == "torch.sigmoid");
  copy->lint();
}

TEST_CASE("graph: targets_ever_used lists every target a node has had, once, in first-use order") {
  Graph g;
  const auto ever = [&] {
    std::vector<std::string> out;
    for (const std::string* t : g.targets_ever_used()) out.push_back(*t);
    return out;
  };
  Node* x = g.placeholder("x");
  x->set_type("torch.Tensor");  // a type is not a target
  Node* a = g.call_function("torch.relu", {x});
  Node* b = g.call_function("torch.relu", {a});
  CHECK(ever() == std::vector<std::string>{"x", "torch.relu"});
  b->set_target("torch.sigmoid");
  Node* c = g.call_function("torch.Tensor", {b});  // a target that is also a type's text
  g.output(c);
  g.output_node()->replace_input_with(c, b);
  g.erase_node(c);
  CHECK(ever() == std::vector<std::string>{"x", "torch.relu", "torch.sigmoid", "torch.Tensor", "output"});
  CHECK(&a->target() == g.targets_ever_used()[1]);  // the node's own string
  // A copy has the live nodes' targets, in its own strings.
  const auto copy = g.clone();
  std::vector<std::string> copied;
  for (const std::string* t : copy->targets_ever_used()) copied.push_back(*t);
  CHECK(copied == std::vector<std::string>{"x", "torch.relu", "torch.sigmoid", "output"});
  CHECK(&copy->find_node("relu")->target() == copy->targets_ever_used()[1]);
}

TEST_CASE("graph: erase refuses a node with users, insertion points, DCE") {
  Graph g;
  Node* x = g.placeholder("x");
  Node* sin = g.call_method("sin", {x});
  Node* out = g.output(sin);
  CHECK_THROWS_WITH_AS(g.erase_node(sin), doctest::Contains("still has 1 user(s): output"), GraphError);
  {
    auto at = g.inserting_before(sin);
    Node* cos = g.call_method("cos", {x});
    CHECK(cos->next() == sin);
  }
  {
    auto at = g.inserting_after(sin);
    Node* relu = g.call_function("torch.relu", {sin});
    CHECK(relu->prev() == sin);
    out->set_args({relu});
  }
  CHECK(g.to_string() ==
        "graph(x):\n"
        "    %x : [#users=2] = placeholder[target=x]\n"
        "    %cos : [#users=0] = call_method[target=cos](args = (%x,), kwargs = {})\n"
        "    %sin : [#users=1] = call_method[target=sin](args = (%x,), kwargs = {})\n"
        "    %relu : [#users=1] = call_function[target=torch.relu](args = (%sin,), kwargs = {})\n"
        "    return %relu");
  CHECK(g.eliminate_dead_code());
  CHECK(g.find_node("cos") == nullptr);
  CHECK(g.size() == 4);
  CHECK_FALSE(g.eliminate_dead_code());
  // in-place ops are kept: they have side effects
  Node* inplace = nullptr;
  {
    auto at = g.inserting_before(out);
    inplace = g.call_method("relu_", {x});
  }
  CHECK_FALSE(g.eliminate_dead_code());
  CHECK(g.find_node(inplace->name()) == inplace);
  g.lint();
}

TEST_CASE("graph: lint catches broken graphs") {
  SUBCASE("use before definition") {
    Graph g;
    Node* x = g.placeholder("x");
    Node* a = g.call_method("sin", {x});
    Node* b = g.call_method("cos", {x});
    g.output(b);
    a->set_args({b});
    CHECK_THROWS_WITH_AS(g.lint(), doctest::Contains("uses 'cos', which comes later"), GraphError);
    // The liveness analysis codegen and plans run on refuses it too, by itself.
    CHECK_THROWS_WITH_AS((void)g.last_uses(),
                         "last_uses: node 'sin' uses 'cos', which does not come before it (Graph::lint refuses such graphs)",
                         GraphError);
    a->set_args({a});  // itself
    CHECK_THROWS_WITH_AS((void)g.last_uses(), doctest::Contains("node 'sin' uses 'sin', which does not come before it"),
                         GraphError);
  }
  SUBCASE("dangling reference to a node of another graph is refused at creation") {
    Graph g, other;
    Node* foreign = other.placeholder("y");
    Node* x = g.placeholder("x");
    CHECK_THROWS_WITH_AS(g.call_function("operator.add", {x, foreign}),
                         doctest::Contains("of another graph"), GraphError);
    CHECK(g.size() == 1);
  }
  SUBCASE("use before definition across the graph's chunks, and places reused after an erase") {
    Graph g;  // nodes go in chunks of 8, 16, 32, ...: these 200 span several
    Node* x = g.placeholder("x");
    std::vector<Node*> chain{x};
    for (int i = 0; i < 200; ++i) chain.push_back(g.call_method("sin", {chain.back()}));
    g.output(chain.back());
    CHECK_NOTHROW(g.lint());
    Node* spare = g.call_method("cos", {x});  // before the output: nothing uses it
    g.erase_node(spare);
    Node* reused = [&] {
      auto at = g.inserting_before(chain[5]);
      return g.call_method("cos", {chain[3]});  // takes the erased node's place
    }();
    CHECK(reused == spare);
    CHECK_NOTHROW(g.lint());
    chain[7]->set_args({chain[150]});
    CHECK_THROWS_WITH_AS(g.lint(), doctest::Contains("uses 'sin_149', which comes later"), GraphError);
  }
  SUBCASE("no output") {
    Graph g;
    g.placeholder("x");
    CHECK_THROWS_WITH_AS(g.lint(), doctest::Contains("0 output nodes"), GraphError);
  }
  SUBCASE("two outputs are refused") {
    Graph g;
    Node* x = g.placeholder("x");
    g.output(x);
    CHECK_THROWS_AS(g.output(x), GraphError);
  }
  SUBCASE("node after output") {
    Graph g;
    Node* x = g.placeholder("x");
    Node* out = g.output(x);
    {
      auto at = g.inserting_after(out);
      g.call_method("sin", {x});
    }
    CHECK_THROWS_WITH_AS(g.lint(), doctest::Contains("is not the last node"), GraphError);
  }
}

TEST_CASE("graph: generation follows every edit, structure_generation every edit but meta") {
  Graph g;
  Node* x = g.placeholder("x");
  Node* s = g.call_method("sin", {x});
  g.output(s);
  // Each edit moves generation(); `structural` says whether it moves structure_generation().
  auto check_edit = [&](const char* what, bool structural, auto&& edit) {
    INFO(what);
    const std::uint64_t gen = g.generation(), structure = g.structure_generation();
    edit();
    CHECK(g.generation() != gen);
    CHECK((g.structure_generation() != structure) == structural);
  };
  check_edit("meta set", false, [&] { s->meta().set("stack_trace", "File \"a.py\", line 1, in f"); });
  check_edit("meta replaced", false, [&] { s->meta().set("stack_trace", "File \"b.py\", line 2, in f"); });
  check_edit("meta erased", false, [&] { CHECK(s->meta().erase("stack_trace")); });
  check_edit("meta assigned", false, [&] { s->meta() = x->meta(); });
  check_edit("target", true, [&] { s->set_target("cos"); });
  check_edit("args", true, [&] { s->set_args({x, x}); });
  check_edit("kwargs", true, [&] { s->set_kwargs(Dict{{{"alpha", 2.0}}}); });
  check_edit("type", true, [&] { s->set_type("torch.Tensor"); });
  check_edit("node created", true, [&] {
    auto at = g.inserting_before(s);
    g.call_method("relu", {x});
  });
  check_edit("node erased", true, [&] { g.erase_node(g.find_node("relu")); });
  check_edit("dialect", true, [&] { g.set_dialect(g.dialect() == Dialect::Torch2 ? Dialect::Torch1_13 : Dialect::Torch2); });
}

TEST_CASE("graph: clone keeps names, args, kwargs, meta") {
  Graph g;
  Node* x = g.placeholder("x");
  Node* c = g.call_method("clamp", {x}, Dict{{{"min", -std::numeric_limits<double>::infinity()}}});
  c->meta().set("stack_trace", "File \"a.py\", line 1, in f");
  g.output(Tuple{{c, x}});
  auto copy = g.clone();
  CHECK(copy->to_string() == g.to_string());
  CHECK(python_code(*copy) == python_code(g));
  CHECK(copy->find_node("clamp")->meta() == c->meta());
  CHECK(copy->find_node("clamp")->input_nodes()[0] == copy->find_node("x"));
}

TEST_CASE("graph: op names parse and print") {
  for (Op op : {Op::Placeholder, Op::GetAttr, Op::CallFunction, Op::CallMethod, Op::CallModule, Op::Output})
    CHECK(parse_op(op_name(op)) == op);
  CHECK_THROWS_WITH_AS(parse_op("call_lambda"), doctest::Contains("unknown node op 'call_lambda'"), GraphError);
}

TEST_CASE("graph: last_uses lists, per node, the values it reads for the last time") {
  Graph g;
  Node* x = g.placeholder("x");
  Node* a = g.call_method("sin", {x});
  Node* unused = g.call_method("cos", {x});
  Node* b = g.call_function("operator.add", {a, x});
  Node* c = g.call_function("operator.mul", {b}, Dict{{{"other", a}}});
  g.output(c);
  const LastUses uses = g.last_uses();
  REQUIRE(uses.size() == 6);
  auto at = [&](std::size_t i) {
    auto s = uses.at(i);
    return std::vector<const Node*>(s.begin(), s.end());
  };
  CHECK(at(0).empty());
  CHECK(at(1).empty());
  CHECK(at(2).empty());  // cos reads x, but add reads it later
  CHECK(at(3) == std::vector<const Node*>{x});
  CHECK(at(4) == std::vector<const Node*>{b, a});  // in the order mul references them
  CHECK(at(5) == std::vector<const Node*>{c});      // the output is the last use of what it returns
  CHECK(uses.position(unused) == 2);
  CHECK(uses.position(c) == 4);
}

TEST_CASE("graph: code and plans refuse a LastUses made before the graph changed, or for another graph") {
  // A stale analysis holds positions past the graph's end and pointers to erased nodes; the
  // functions that take one check it instead of reading past their buffers.
  Graph g;
  Node* x = g.placeholder("x");
  Node* r = g.call_function("torch.relu", {x});
  Node* s = g.call_method("sin", {r});
  Node* c = g.call_method("cos", {x});
  Node* out = g.output(s);
  const LastUses stale = g.last_uses();
  LastUses stale_for_plan = g.last_uses();
  CHECK_NOTHROW(stale.check_current(g, "test"));
  g.erase_node(out);
  g.erase_node(s);
  g.erase_node(r);
  g.output(c);
  CHECK_THROWS_WITH_AS(generate_python_code(g, stale),
                       "generate_python_code: the LastUses given was made before the graph last changed; make it "
                       "with graph.last_uses() after the last edit",
                       GraphError);
  Module root;
  CHECK_THROWS_WITH_AS((void)Plan::build_instructions(g, root, {}, std::move(stale_for_plan)),
                       doctest::Contains("Plan::build_instructions: the LastUses given was made before"), GraphError);
  Graph other;
  other.output(other.placeholder("x"));
  CHECK_THROWS_WITH_AS(generate_python_code(other, g.last_uses()), doctest::Contains("made for another graph"),
                       GraphError);
  CHECK(generate_python_code(g, g.last_uses()).src == generate_python_code(g).src);
}
