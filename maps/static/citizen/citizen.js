/* The citizen's pages, better with JavaScript: category search, photo previews (and shrinking a photo
   too large to send), one send per tap, copying the tracking link. The forms work without it. */
(function () {
  "use strict";
  function each(list, fn) { Array.prototype.forEach.call(list, fn); }
  each(document.querySelectorAll(".js-only"), function (el) { el.hidden = false; });

  // ---- category search: keep the options that match the name or the code
  var select = document.getElementById("category");
  var search = document.getElementById("category-search");
  if (select && search) {
    var groups = Array.prototype.map.call(select.querySelectorAll("optgroup"), function (g) {
      return { label: g.label, options: Array.prototype.map.call(g.querySelectorAll("option"), function (o) {
        return { value: o.value, text: o.textContent }; }) };
    });
    var placeholder = select.querySelector("option[value='']").textContent;
    var filter = function () {
      var q = search.value.trim().toLowerCase(), keep = select.value, values = {};
      while (select.firstChild) select.removeChild(select.firstChild);
      select.appendChild(new Option(placeholder, ""));
      groups.forEach(function (g) {
        var hits = g.options.filter(function (o) {
          return !q || o.text.toLowerCase().indexOf(q) >= 0 || o.value.indexOf(q) === 0;
        });
        if (!hits.length) return;
        var og = document.createElement("optgroup");
        og.label = g.label;
        hits.forEach(function (o) { og.appendChild(new Option(o.text, o.value)); values[o.value] = true; });
        select.appendChild(og);
      });
      var found = Object.keys(values);
      if (values[keep]) select.value = keep;
      else if (q && found.length === 1) select.value = found[0];
      else select.value = "";
    };
    search.addEventListener("input", filter);
  }

  // ---- photos: how many, previews, and shrinking one over the size limit (else it would be refused)
  var form = document.querySelector("form.report");
  var input = document.getElementById("photo");
  var previews = document.getElementById("previews");
  var LIMIT_BYTES = form ? parseInt(form.getAttribute("data-max-bytes"), 10) || 10485760 : 10485760;
  var shrink = function (file) {
    return new Promise(function (resolve) {
      if (file.size <= LIMIT_BYTES || !/^image\/(jpeg|png|webp)$/.test(file.type)) return resolve(file);
      var img = new Image(), url = URL.createObjectURL(file);
      img.onload = function () {
        var scale = Math.min(1, 2048 / Math.max(img.naturalWidth, img.naturalHeight));
        var c = document.createElement("canvas");
        c.width = Math.round(img.naturalWidth * scale);
        c.height = Math.round(img.naturalHeight * scale);
        c.getContext("2d").drawImage(img, 0, 0, c.width, c.height);
        URL.revokeObjectURL(url);
        c.toBlob(function (b) {
          resolve(b ? new File([b], file.name.replace(/\.\w+$/, "") + ".jpg", { type: "image/jpeg" }) : file);
        }, "image/jpeg", 0.85);
      };
      img.onerror = function () { URL.revokeObjectURL(url); resolve(file); };
      img.src = url;
    });
  };
  if (form && input && previews) {
    var max = parseInt(form.getAttribute("data-max-photos"), 10) || 3;
    input.addEventListener("change", function () {
      var files = Array.prototype.slice.call(input.files || []);
      input.setCustomValidity(files.length > max ? "最多 " + max + " 张照片 / at most " + max + " photos" : "");
      if (files.length > max) input.reportValidity();
      while (previews.firstChild) previews.removeChild(previews.firstChild);
      files.slice(0, max).forEach(function (f) {
        if (!/^image\//.test(f.type)) return;
        var img = document.createElement("img");
        img.alt = f.name;
        img.src = URL.createObjectURL(f);
        img.onload = function () { URL.revokeObjectURL(img.src); };
        previews.appendChild(img);
      });
      if (files.some(function (f) { return f.size > LIMIT_BYTES; }) && window.DataTransfer && window.Promise) {
        Promise.all(files.map(shrink)).then(function (out) {
          var dt = new DataTransfer();
          out.forEach(function (f) { dt.items.add(f); });
          input.files = dt.files;
        });
      }
    });
  }

  // ---- one send per tap (the form's key makes a resend file the same report anyway)
  if (form) {
    var send = document.getElementById("send");
    form.addEventListener("submit", function () {
      if (!send) return;
      window.setTimeout(function () { send.disabled = true; }, 0);
      window.setTimeout(function () { send.disabled = false; }, 15000);
    });
    window.addEventListener("pageshow", function () { if (send) send.disabled = false; });
  }

  // ---- the receipt: copy the tracking link
  var copy = document.getElementById("copy-link");
  if (copy) {
    copy.addEventListener("click", function () {
      var link = copy.getAttribute("data-link");
      var done = function () { copy.textContent = "已复制 / Copied"; };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(link).then(done);
      else {
        var r = document.createRange();
        r.selectNodeContents(document.getElementById("tracking-link"));
        var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        try { document.execCommand("copy"); done(); } catch (e) { /* the link stays selected to copy by hand */ }
      }
    });
  }
})();
