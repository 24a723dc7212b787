#ifndef HRTEM_CPNG_SHIM_H
#define HRTEM_CPNG_SHIM_H
#include <png.h>
#endif
