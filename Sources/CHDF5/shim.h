#ifndef HRTEM_CHDF5_SHIM_H
#define HRTEM_CHDF5_SHIM_H
// libhdf5's type and property-list constants are macros Swift cannot import; these typed
// wrappers expose what the dataset exporter needs (3-D float datasets written slab by slab).
#include <hdf5.h>

/// A new file (truncating an existing one); negative on failure.
static inline hid_t hrtem_h5_create_file(const char *path) {
    return H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}

/// A contiguous little-endian float64 (`float64` != 0) or float32 dataset of shape (n, h, w).
static inline hid_t hrtem_h5_create_dataset_3d(hid_t file, const char *name, int float64,
                                               hsize_t n, hsize_t h, hsize_t w) {
    hsize_t dims[3] = {n, h, w};
    hid_t space = H5Screate_simple(3, dims, NULL);
    if (space < 0) return space;
    hid_t dataset = H5Dcreate2(file, name, float64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, space,
                               H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    return dataset;
}

/// Writes `count` consecutive (h, w) planes from `data` (native float64 or float32) at plane `index`.
static inline herr_t hrtem_h5_write_planes(hid_t dataset, hsize_t index, hsize_t count, hsize_t h, hsize_t w,
                                           int float64, const void *data) {
    hid_t fileSpace = H5Dget_space(dataset);
    if (fileSpace < 0) return -1;
    hsize_t start[3] = {index, 0, 0};
    hsize_t extent[3] = {count, h, w};
    herr_t status = H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, NULL, extent, NULL);
    hid_t memorySpace = H5Screate_simple(3, extent, NULL);
    if (status >= 0 && memorySpace >= 0) {
        status = H5Dwrite(dataset, float64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, memorySpace, fileSpace,
                          H5P_DEFAULT, data);
    } else {
        status = -1;
    }
    if (memorySpace >= 0) H5Sclose(memorySpace);
    H5Sclose(fileSpace);
    return status;
}

static inline herr_t hrtem_h5_close_dataset(hid_t dataset) { return H5Dclose(dataset); }
static inline herr_t hrtem_h5_close_file(hid_t file) { return H5Fclose(file); }
/// Silences libhdf5's own error printing (hrtem reports errors itself).
static inline void hrtem_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

#endif
