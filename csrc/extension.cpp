// The Python module stub: lets `import cookbook_ops._C` load this library so that its
// TORCH_LIBRARY_IMPL blocks register their kernels. Schemas are defined in Python
// (cookbook_ops/_library.py). A CMake build for torch.ops.load_library defines
// COOKBOOK_OPS_NO_PYTHON_MODULE and needs no Python headers.
#ifndef COOKBOOK_OPS_NO_PYTHON_MODULE
#include <Python.h>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",  // name
      "cookbook_ops compiled kernels (registered with the PyTorch dispatcher on import)",
      -1,       // size
      nullptr,  // methods
  };
  return PyModule_Create(&module_def);
}
}
#endif
