#ifndef HRTEM_CHDF5_SHIM_H
#define HRTEM_CHDF5_SHIM_H
// libhdf5's type and property-list constants are macros Swift cannot import; these typed
// wrappers expose what the dataset exporter and importer need (3-D float datasets written and
// read slab by slab).
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

/// Opens an existing file read-only; negative on failure.
static inline hid_t hrtem_h5_open_file_read(const char *path) {
    return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}

/// Opens dataset `name` if the file has a link of that name (no error stack when it does not).
static inline hid_t hrtem_h5_open_dataset(hid_t file, const char *name) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return -1;
    return H5Dopen2(file, name, H5P_DEFAULT);
}

/// The dataset's rank (negative on failure); its first `capacity` extents go to `dims`.
static inline int hrtem_h5_dataset_shape(hid_t dataset, hsize_t *dims, int capacity) {
    hid_t space = H5Dget_space(dataset);
    if (space < 0) return -1;
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank >= 0 && rank <= capacity) H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    return rank;
}

/// 1 for a floating-point dataset, 2 for an integer one, 0 for anything else; `size` gets the
/// element's byte count.
static inline int hrtem_h5_dataset_kind(hid_t dataset, size_t *size) {
    hid_t type = H5Dget_type(dataset);
    if (type < 0) return 0;
    H5T_class_t cls = H5Tget_class(type);
    *size = H5Tget_size(type);
    H5Tclose(type);
    return cls == H5T_FLOAT ? 1 : cls == H5T_INTEGER ? 2 : 0;
}

/// Reads `count` consecutive (h, w) planes at plane `index` into `data`, converted by libhdf5 to
/// native float64 (`float64` != 0) or float32.
static inline herr_t hrtem_h5_read_planes(hid_t dataset, hsize_t index, hsize_t count, hsize_t h, hsize_t w,
                                          int float64, void *data) {
    hid_t fileSpace = H5Dget_space(dataset);
    if (fileSpace < 0) return -1;
    hsize_t start[3] = {index, 0, 0};
    hsize_t extent[3] = {count, h, w};
    herr_t status = H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, NULL, extent, NULL);
    hid_t memorySpace = H5Screate_simple(3, extent, NULL);
    if (status >= 0 && memorySpace >= 0) {
        status = H5Dread(dataset, float64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, memorySpace, fileSpace,
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
