// The checks Graph::lint makes of one node by itself, apart from its place in the graph: the
// arguments its op allows and a non-empty target.
//
// A loader builds a graph whose references are earlier nodes of the same graph by
// construction (pickle.cpp's Builder), so lint's walk over every node would only repeat these
// checks; it runs them on each node as the node is added, while the node is still in cache (a
// second walk missed the cache once per node of a large graph).
#pragma once

namespace fxpack {
class Node;
}

namespace fxpack::detail {

// Throws GraphError naming the node, with the message Graph::lint gives.
void lint_node_arguments(const Node& n);

}  // namespace fxpack::detail
