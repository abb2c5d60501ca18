// Python layers in the engine binary: the interpreter embedded, started on first use.
#pragma once

namespace engine {

// Makes type: "Python" layers buildable in this program.
void use_embedded_python();

}  // namespace engine
