// A port on 127.0.0.1 that a process about to start can take for both TCP and UDP (local
// clusters, tests). Chosen at random below the kernel's ephemeral range: a port from bind(0)
// would be handed again to the next bind(0) anywhere on the machine between our check and the
// process binding it, which made concurrent local clusters collide.
#pragma once

namespace herd::cluster {

// Throws herd::Error when no port is found after many tries.
int free_local_port();

}  // namespace herd::cluster
