#ifndef HRTEM_CCURL_SHIM_H
#define HRTEM_CCURL_SHIM_H
#include <curl/curl.h>
// Swift cannot call the variadic curl_easy_setopt / curl_easy_getinfo: typed wrappers go here.
static inline CURLcode hrtem_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode hrtem_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode hrtem_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode hrtem_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
#endif
