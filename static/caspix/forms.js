// Forms that htmx submits in place (data-swap-errors): a 400 answer is the page with the form's
// errors, which is swapped in like a success, so the analyst sees what to correct. htmx leaves
// 4xx answers unswapped by default. Without JavaScript the same forms post and redirect.
document.addEventListener("htmx:beforeSwap", function (event) {
  var source = event.detail.requestConfig ? event.detail.requestConfig.elt : null;
  var form = source && source.closest ? source.closest("[data-swap-errors]") : null;
  if (form && event.detail.xhr.status === 400) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
