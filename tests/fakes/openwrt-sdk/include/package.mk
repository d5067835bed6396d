# A STAND-IN for the SDK's include/package.mk (tests only).
PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_INSTALL_DIR ?= $(PKG_BUILD_DIR)/ipkg-install
BuildPackage =

# What the SDK does for one package, in order, into $(DEST).
stand-in-build:
	$(Build/Prepare)
	$(Build/Configure)
	$(Build/Compile)
	$(call Py3Package/edgeddns/install,$(DEST))
