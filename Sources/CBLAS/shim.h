#ifndef HRTEM_CBLAS_SHIM_H
#define HRTEM_CBLAS_SHIM_H
#include <cblas.h>
#endif
